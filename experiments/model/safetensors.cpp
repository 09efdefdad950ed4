#include "experiments/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/process.h"

namespace seedgrid {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the reference implementation's limit

struct DTypeName {
  StDType type;
  std::string_view name;
  size_t size;
};
constexpr DTypeName kDTypes[] = {
    {StDType::kF64, "F64", 8},   {StDType::kF32, "F32", 4}, {StDType::kF16, "F16", 2},
    {StDType::kBF16, "BF16", 2}, {StDType::kI64, "I64", 8}, {StDType::kI32, "I32", 4},
    {StDType::kI16, "I16", 2},   {StDType::kI8, "I8", 1},   {StDType::kU8, "U8", 1},
    {StDType::kBool, "BOOL", 1},
};

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw SafetensorsError(fmt::format("safetensors file {}: {}", path, what));
}

std::string Errno() { return std::strerror(errno); }

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

std::string_view ToString(StDType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}

size_t StDTypeSize(StDType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// One tensor's header entry, checked against the data section: nullopt, with the problem
// added to `problems`, when its dtype, shape or offsets are wrong.
static std::optional<TensorView> ParseTensorEntry(const std::string& name,
                                                  const nlohmann::json& entry, const uint8_t* data,
                                                  uint64_t data_size,
                                                  std::vector<std::string>& problems) {
  const auto bad = [&](const std::string& what) {
    problems.push_back(fmt::format("tensor '{}': {}", name, what));
  };
  if (!entry.is_object()) {
    bad("entry is not an object");
    return std::nullopt;
  }
  TensorView view;
  view.name = name;
  const auto dt = entry.find("dtype");
  if (dt == entry.end() || !dt->is_string()) {
    bad("missing dtype");
    return std::nullopt;
  }
  const std::string dtype = dt->get<std::string>();
  const auto known = std::find_if(std::begin(kDTypes), std::end(kDTypes),
                                  [&](const DTypeName& d) { return d.name == dtype; });
  if (known == std::end(kDTypes)) {
    bad(fmt::format("unknown dtype '{}' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)", dtype));
    return std::nullopt;
  }
  view.dtype = known->type;
  const auto sh = entry.find("shape");
  if (sh == entry.end() || !sh->is_array()) {
    bad("missing shape");
    return std::nullopt;
  }
  bool shape_ok = true;
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned()) {
      shape_ok = false;
      break;
    }
    const uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / v) {
      shape_ok = false;
      break;
    }
    numel *= v;
    view.shape.push_back(static_cast<int64_t>(v));
  }
  if (!shape_ok) {
    bad(fmt::format("bad shape {} (need non-negative integers)", sh->dump()));
    return std::nullopt;
  }
  const auto off = entry.find("data_offsets");
  if (off == entry.end() || !off->is_array() || off->size() != 2 ||
      !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
    bad("missing or malformed data_offsets (need [begin, end])");
    return std::nullopt;
  }
  const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end || end > data_size) {
    bad(fmt::format("data_offsets [{}, {}) out of range (data section has {} bytes)", begin, end,
                    data_size));
    return std::nullopt;
  }
  const uint64_t want = numel * known->size;
  if (end - begin != want) {
    bad(fmt::format("shape {} of {} needs {} bytes but data_offsets span {}", sh->dump(), dtype,
                    want, end - begin));
    return std::nullopt;
  }
  view.data = data + begin;
  view.nbytes = end - begin;
  return view;
}

// Tensors whose byte ranges overlap, as problems.
static void AddOverlaps(const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                        const std::vector<std::string>& names, std::vector<std::string>& problems) {
  std::vector<size_t> order(ranges.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ranges[a] < ranges[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    const auto& prev = ranges[order[i - 1]];
    const auto& cur = ranges[order[i]];
    if (cur.first < prev.second)
      problems.push_back(fmt::format("tensors '{}' [{}, {}) and '{}' [{}, {}) overlap",
                                     names[order[i - 1]], prev.first, prev.second, names[order[i]],
                                     cur.first, cur.second));
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) Fail(path, "cannot open: " + Errno());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) Fail(path, "cannot stat: " + Errno());
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    Fail(path, fmt::format("file is {} bytes, shorter than the 8-byte header length", file_size));
  // Private and read-only; MakeWritable opens the ranges a loader keeps (see the header).
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (map == MAP_FAILED) Fail(path, "mmap failed: " + Errno());
  map_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(map),
                                  [file_size](uint8_t* p) { ::munmap(p, file_size); });
  map_size_ = file_size;
  fd_ = fd.release();
  try {
    const uint8_t* bytes = map_.get();
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    if (header_len == 0) Fail(path, "bad header length 0");
    if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
      Fail(path, fmt::format("bad header length {} (file has {} bytes after the length field)",
                             header_len, file_size - 8));
    const std::string_view header_text(reinterpret_cast<const char*>(bytes + 8), header_len);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(header_text);
    } catch (const nlohmann::json::exception& e) {
      Fail(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) Fail(path, "header is not a JSON object");
    const uint8_t* data = bytes + 8 + header_len;
    const uint64_t data_size = file_size - 8 - header_len;

    std::vector<std::string> problems;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // (begin, end) of non-empty tensors
    std::vector<std::string> range_names;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) {
          problems.push_back("__metadata__ is not an object");
          continue;
        }
        for (const auto& [k, v] : entry.items()) {
          if (!v.is_string())
            problems.push_back(fmt::format("__metadata__['{}'] is not a string", k));
          else
            metadata_[k] = v.get<std::string>();
        }
        continue;
      }
      auto view = ParseTensorEntry(name, entry, data, data_size, problems);
      if (!view) continue;
      if (view->nbytes > 0) {
        const uint64_t begin = static_cast<uint64_t>(view->data - data);
        ranges.emplace_back(begin, begin + view->nbytes);
        range_names.push_back(name);
      }
      tensors_.emplace(name, std::move(*view));
    }
    AddOverlaps(ranges, range_names, problems);
    if (!problems.empty()) {
      std::string all;
      for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
      Fail(path, all);
    }
  } catch (...) {
    map_.reset();
    ::close(std::exchange(fd_, -1));
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      map_(std::move(other.map_)),
      map_size_(std::exchange(other.map_size_, 0)),
      tensors_(std::move(other.tensors_)),
      metadata_(std::move(other.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    map_ = std::move(other.map_);
    map_size_ = std::exchange(other.map_size_, 0);
    tensors_ = std::move(other.tensors_);
    metadata_ = std::move(other.metadata_);
  }
  return *this;
}

const TensorView& SafetensorsFile::Get(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) Fail(path_, fmt::format("missing tensor '{}'", name));
  return it->second;
}

bool SafetensorsFile::Owns(const TensorView& view) const {
  const uint8_t* base = map_.get();
  return base != nullptr && view.data >= base && view.data + view.nbytes <= base + map_size_;
}

uint8_t* SafetensorsFile::MakeWritable(const TensorView& view, size_t nbytes) const {
  if (!Owns(view) || nbytes > map_size_ - static_cast<size_t>(view.data - map_.get()))
    Fail(path_,
         fmt::format("tensor '{}': {} bytes from it are not inside this file", view.name, nbytes));
  uint8_t* data = map_.get() + (view.data - map_.get());
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + nbytes + page - 1) / page * page;
  if (end > begin &&
      ::mprotect(reinterpret_cast<void*>(begin), end - begin, PROT_READ | PROT_WRITE) != 0)
    Fail(path_, fmt::format("tensor '{}': cannot make its {} bytes writable: {}", view.name, nbytes,
                            Errno()));
  return data;
}

void SafetensorsFile::Read(const TensorView& view, size_t begin, size_t n, void* out) const {
  const uint8_t* base = map_.get();
  if (!Owns(view) || begin > view.nbytes || n > view.nbytes - begin)
    Fail(path_, fmt::format("tensor '{}': cannot read bytes [{}, {}) of its {}", view.name, begin,
                            begin + n, view.nbytes));
  auto offset = static_cast<off_t>(view.data - base + begin);
  auto* dst = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, dst, n, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) Fail(path_, fmt::format("tensor '{}': read failed: {}", view.name, Errno()));
    if (got == 0)
      Fail(path_, fmt::format("tensor '{}': file ends at byte {} (truncated while open?)",
                              view.name, offset));
    dst += got;
    offset += got;
    n -= static_cast<size_t>(got);
  }
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

void WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      Fail(path, fmt::format("cannot write a tensor named '{}'", t.name));
    if (header.contains(t.name)) Fail(path, fmt::format("duplicate tensor '{}'", t.name));
    uint64_t numel = 1;
    for (int64_t s : t.shape) {
      if (s < 0) Fail(path, fmt::format("tensor '{}': negative dimension", t.name));
      numel *= static_cast<uint64_t>(s);
    }
    const uint64_t nbytes = numel * StDTypeSize(t.dtype);
    if (nbytes > 0 && t.data == nullptr) Fail(path, fmt::format("tensor '{}': no data", t.name));
    header[t.name] = {{"dtype", std::string(ToString(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    sizes.push_back(nbytes);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) Fail(path, "cannot create " + tmp + ": " + Errno());
  const auto write_all = [&](const void* p, size_t n) {
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd.get(), c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const std::string err = Errno();
        ::unlink(tmp.c_str());
        Fail(path, "write failed: " + err);
      }
      c += w;
      n -= static_cast<size_t>(w);
    }
  };
  uint8_t len[8];
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  write_all(len, 8);
  write_all(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i)
    if (sizes[i] > 0) write_all(tensors[i].data, sizes[i]);
  if (::fsync(fd.get()) != 0) {
    const std::string err = Errno();
    ::unlink(tmp.c_str());
    Fail(path, "fsync failed: " + err);
  }
  if (::close(fd.release()) != 0) {
    const std::string err = Errno();
    ::unlink(tmp.c_str());
    Fail(path, "close failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = Errno();
    ::unlink(tmp.c_str());
    Fail(path, "rename failed: " + err);
  }
}

void ConvertToFloat32(const TensorView& view, float* out, const std::string& file) {
  const int64_t n = view.numel();
  switch (view.dtype) {
    case StDType::kF32: std::memcpy(out, view.data, static_cast<size_t>(n) * 4); return;
    case StDType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, view.data + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return;
    case StDType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, view.data + 2 * i, 2);
        out[i] = HalfToFloat(h);
      }
      return;
    case StDType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, view.data + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    default:
      Fail(file, fmt::format("tensor '{}': dtype {} is not a floating-point weight type "
                             "(need F32, F16, BF16 or F64)",
                             view.name, ToString(view.dtype)));
  }
}

}  // namespace seedgrid
