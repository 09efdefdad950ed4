#include "core/store.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "core/sysutil.h"

namespace seedgrid {

namespace fs = std::filesystem;

namespace {

constexpr size_t kChunkBytes = 1 << 20;

// HDF5 prints its error stack to stderr by default; we report it ourselves in StoreError.
//
// No library shutdown at exit (H5dont_atexit, which must come before anything initializes the
// library): when H5Fclose fails to flush a file (ENOSPC, EDQUOT, EIO), HDF5 1.10 has already
// freed the file and closed its descriptor, but leaves the file's ID registered because the
// close "failed". The shutdown that atexit would run closes that ID again and dereferences the
// freed file: a SIGSEGV after the process has done its work (a sweep on a full disk ended in
// exit code 139). Every file we open is closed by its RAII owner, so there is nothing left for
// the shutdown to flush; the stale ID is never touched again (checked under valgrind: later
// files create, write and reopen normally).
void InitHdf5() {
  static const bool done = [] {
    H5dont_atexit();
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// The errno in an HDF5 low-level I/O error ("... errno = 28, error message = ..."), which the
// sec2 and core drivers put in their description; 0 when none names one.
int ErrnoIn(std::string_view desc) {
  constexpr std::string_view kKey = "errno = ";
  auto at = desc.find(kKey);
  if (at == std::string_view::npos) return 0;
  int v = 0;
  for (auto i = at + kKey.size(); i < desc.size() && desc[i] >= '0' && desc[i] <= '9'; ++i) {
    v = v * 10 + (desc[i] - '0');
  }
  return v;
}

// A driver's description up to its dump of time, file name, descriptor, errno and buffer
// address (the errno is reported in words, the rest is noise on a line `status` shows).
std::string_view Headline(std::string_view desc) {
  size_t cut = desc.size();
  for (std::string_view key : {": time = ", ", filename = ", ", errno = "}) {
    cut = std::min(cut, desc.find(key));
  }
  return desc.substr(0, cut);
}

// The current error stack, which is then cleared: the outermost (API) and innermost (cause)
// descriptions, and the errno of the innermost I/O error that names one.
struct ErrorStack {
  std::string summary;
  int error = 0;
};

ErrorStack TakeErrorStack() {
  std::vector<std::string> descs;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(e->desc ? e->desc : "");
        return 0;
      },
      &descs);
  H5Eclear2(H5E_DEFAULT);
  ErrorStack s;
  for (auto it = descs.rbegin(); it != descs.rend() && s.error == 0; ++it) s.error = ErrnoIn(*it);
  if (descs.empty()) {
    s.summary = "HDF5 call failed";
  } else if (descs.size() == 1 || descs.front() == descs.back()) {
    s.summary = Headline(descs.front());
  } else {
    s.summary = fmt::format("{}: {}", Headline(descs.front()), Headline(descs.back()));
  }
  return s;
}

// `object` is empty for errors about the file as a whole. When the system said why (a full
// disk, a quota, an I/O error), its words come first, on the message's first line, where
// `seedgrid status` shows them: "<file>: cannot close file: No space left on device (HDF5: ...)".
[[noreturn]] void Fail(const std::string& file, const std::string& object, std::string_view what) {
  const ErrorStack stack = TakeErrorStack();
  const std::string where = object.empty() ? fmt::format("{}: {}", file, what)
                                           : fmt::format("{}: {} '{}'", file, what, object);
  if (stack.error != 0) {
    throw StoreError(
        fmt::format("{}: {} (HDF5: {})", where, std::strerror(stack.error), stack.summary));
  }
  throw StoreError(fmt::format("{}: {}", where, stack.summary));
}

// Every HDF5 return value goes through here: hid_t, herr_t and htri_t all signal failure < 0.
template <typename I>
I Check(I v, const std::string& file, const std::string& object, std::string_view what) {
  if (v < 0) Fail(file, object, what);
  return v;
}

// Owns one hid_t and closes it with the matching H5?close.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Closer close) : id_(id), close_(close) {}
  Hid(hid_t id, Closer close, const std::string& file, const std::string& object,
      std::string_view what)
      : id_(Check(id, file, object, what)), close_(close) {}
  ~Hid() { Reset(); }
  Hid(Hid&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Hid& operator=(Hid&& o) noexcept {
    if (this != &o) {
      Reset();
      id_ = std::exchange(o.id_, -1);
      close_ = o.close_;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  hid_t release() { return std::exchange(id_, -1); }
  void Reset() noexcept {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

template <typename T>
struct H5Type;
template <>
struct H5Type<float> {
  static hid_t Mem() { return H5T_NATIVE_FLOAT; }
  static hid_t File() { return H5T_IEEE_F32LE; }
};
template <>
struct H5Type<double> {
  static hid_t Mem() { return H5T_NATIVE_DOUBLE; }
  static hid_t File() { return H5T_IEEE_F64LE; }
};
template <>
struct H5Type<int32_t> {
  static hid_t Mem() { return H5T_NATIVE_INT32; }
  static hid_t File() { return H5T_STD_I32LE; }
};
template <>
struct H5Type<int64_t> {
  static hid_t Mem() { return H5T_NATIVE_INT64; }
  static hid_t File() { return H5T_STD_I64LE; }
};
template <>
struct H5Type<uint8_t> {
  static hid_t Mem() { return H5T_NATIVE_UINT8; }
  static hid_t File() { return H5T_STD_U8LE; }
};

// HDF5 1.10.0-1.10.6 always lock files; 1.10.7+ let us opt out. Publication by rename already
// guarantees one writer per file, and flock fails on Lustre/NFS mounts without lock support.
Hid FileAccessPlist(const std::string& file) {
  Hid fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, file, "", "cannot create file access plist");
#if H5_VERSION_GE(1, 10, 7)
  Check(H5Pset_file_locking(fapl.get(), false, true), file, "", "cannot disable file locking");
#endif
  return fapl;
}

Hid Utf8StringType(const std::string& file, const std::string& object) {
  Hid t(H5Tcopy(H5T_C_S1), H5Tclose, file, object, "cannot copy string type");
  Check(H5Tset_size(t.get(), H5T_VARIABLE), file, object, "cannot size string type");
  Check(H5Tset_cset(t.get(), H5T_CSET_UTF8), file, object, "cannot set string charset");
  return t;
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// True when every link on the path exists and the final object resolves (external links
// included). Never throws: "no" covers errors too.
bool ObjectExists(hid_t file, const std::string& path) {
  std::string cur;
  for (const auto& part : SplitPath(path)) {
    cur += "/" + part;
    if (H5Lexists(file, cur.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  if (cur.empty()) return true;  // the root group
  htri_t ok = H5Oexists_by_name(file, cur.c_str(), H5P_DEFAULT);
  if (ok < 0) H5Eclear2(H5E_DEFAULT);
  return ok > 0;
}

// Splits "a/b/c" into ("a/b", "c"); rejects empty names.
std::pair<std::string, std::string> ParentAndName(const std::string& file,
                                                  const std::string& path) {
  auto parts = SplitPath(path);
  if (parts.empty()) throw StoreError(fmt::format("{}: invalid object path '{}'", file, path));
  std::string parent;
  for (size_t i = 0; i + 1 < parts.size(); ++i) parent += "/" + parts[i];
  return {parent.empty() ? "/" : parent, parts.back()};
}

// Opens the group at `path`, creating missing groups on the way.
Hid OpenOrCreateGroup(hid_t file, const std::string& file_path, const std::string& path) {
  Hid cur(H5Gopen2(file, "/", H5P_DEFAULT), H5Gclose, file_path, "/", "cannot open root group");
  std::string so_far;
  for (const auto& part : SplitPath(path)) {
    so_far += "/" + part;
    htri_t exists =
        Check(H5Lexists(cur.get(), part.c_str(), H5P_DEFAULT), file_path, so_far, "cannot look up");
    cur = exists ? Hid(H5Gopen2(cur.get(), part.c_str(), H5P_DEFAULT), H5Gclose, file_path, so_far,
                       "cannot open group")
                 : Hid(H5Gcreate2(cur.get(), part.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       H5Gclose, file_path, so_far, "cannot create group");
  }
  return cur;
}

// Writes a scalar attribute, replacing an existing one of the same name.
void WriteScalarAttr(hid_t obj, const std::string& file, const std::string& object,
                     const std::string& name, hid_t file_type, hid_t mem_type, const void* value) {
  const std::string where = object + "@" + name;
  if (Check(H5Aexists(obj, name.c_str()), file, where, "cannot look up attribute") > 0) {
    Check(H5Adelete(obj, name.c_str()), file, where, "cannot replace attribute");
  }
  Hid space(H5Screate(H5S_SCALAR), H5Sclose, file, where, "cannot create dataspace");
  Hid attr(H5Acreate2(obj, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose, file, where, "cannot create attribute");
  Check(H5Awrite(attr.get(), mem_type, value), file, where, "cannot write attribute");
}

void WriteStringAttr(hid_t obj, const std::string& file, const std::string& object,
                     const std::string& name, const std::string& value) {
  Hid t = Utf8StringType(file, object);
  const char* p = value.c_str();
  WriteScalarAttr(obj, file, object, name, t.get(), t.get(), &p);
}

// Reads string data (variable or fixed length) of `n` elements from a dataset or attribute.
template <typename ReadFn>
std::vector<std::string> ReadStringData(hid_t file_type, size_t n, const std::string& file,
                                        const std::string& object, ReadFn read) {
  std::vector<std::string> out(n);
  if (n == 0) return out;
  if (Check(H5Tis_variable_str(file_type), file, object, "cannot inspect string type") > 0) {
    Hid mem(H5Tcopy(H5T_C_S1), H5Tclose, file, object, "cannot copy string type");
    Check(H5Tset_size(mem.get(), H5T_VARIABLE), file, object, "cannot size string type");
    Check(H5Tset_cset(mem.get(), H5Tget_cset(file_type)), file, object, "cannot set charset");
    std::vector<char*> buf(n, nullptr);
    herr_t rc = read(mem.get(), buf.data());
    for (size_t i = 0; i < n; ++i) {
      if (buf[i]) out[i] = buf[i];
      H5free_memory(buf[i]);
    }
    Check(rc, file, object, "cannot read strings");
    return out;
  }
  size_t size = H5Tget_size(file_type);
  if (size == 0) Fail(file, object, "cannot size string type");
  Hid mem(H5Tcopy(file_type), H5Tclose, file, object, "cannot copy string type");
  std::vector<char> buf(size * n);
  Check(read(mem.get(), buf.data()), file, object, "cannot read strings");
  const bool space_pad = H5Tget_strpad(file_type) == H5T_STR_SPACEPAD;
  for (size_t i = 0; i < n; ++i) {
    const char* s = buf.data() + i * size;
    std::string v(s, strnlen(s, size));
    if (space_pad) v.erase(v.find_last_not_of(' ') + 1);
    out[i] = std::move(v);
  }
  return out;
}

std::string VersionsJson() {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  Json v = {{"seedgrid", std::string(SeedgridVersion())},
            {"git_commit", std::string(GitCommit())},
            {"code_tag", std::string(CodeTag())},
            {"hdf5", fmt::format("{}.{}.{}", maj, min, rel)}};
  return v.dump();
}

}  // namespace

// ---- H5Writer ----

H5Writer::H5Writer(const std::string& path) : path_(path) {
  InitHdf5();
  fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty()) fs::create_directories(dir, ec);
  if (ec) throw StoreError(fmt::format("{}: cannot create directory: {}", path, ec.message()));
  Hid fapl = FileAccessPlist(path);
  file_ = Check(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), path, "",
                "cannot create file");
}

H5Writer::~H5Writer() {
  if (file_ >= 0) {
    H5Fclose(file_);
    H5Eclear2(H5E_DEFAULT);
  }
}

int64_t H5Writer::EnsureGroup(const std::string& group) {
  return OpenOrCreateGroup(file_, path_, group).release();
}

template <typename T>
void H5Writer::Write(const std::string& dataset, const T* data, const Shape& shape) {
  if (file_ < 0) throw StoreError(fmt::format("{}: write to closed file", path_));
  std::vector<hsize_t> dims;
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw StoreError(fmt::format("{}: negative dimension for '{}'", path_, dataset));
    dims.push_back(static_cast<hsize_t>(d));
    n *= static_cast<size_t>(d);
  }
  if (n > 0 && data == nullptr) {
    throw StoreError(fmt::format("{}: null data for '{}'", path_, dataset));
  }
  auto [parent, name] = ParentAndName(path_, dataset);
  Hid group(EnsureGroup(parent), H5Gclose);
  Hid space(dims.empty() ? H5Screate(H5S_SCALAR)
                         : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
            H5Sclose, path_, dataset, "cannot create dataspace");
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path_, dataset, "cannot create plist");
  if (!dims.empty() && n * sizeof(T) > kChunkBytes) {
    // Chunks of about 1 MiB: whole trailing dimensions, as many leading rows as fit.
    std::vector<hsize_t> chunk(dims.size(), 1);
    size_t budget = kChunkBytes / sizeof(T);
    for (size_t i = dims.size(); i-- > 0;) {
      chunk[i] = std::max<hsize_t>(1, std::min<hsize_t>(dims[i], budget));
      budget = std::max<size_t>(1, budget / chunk[i]);
    }
    Check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), path_, dataset,
          "cannot set chunking");
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
      Check(H5Pset_shuffle(dcpl.get()), path_, dataset, "cannot set shuffle");
      Check(H5Pset_deflate(dcpl.get(), 1), path_, dataset, "cannot set gzip");
    }
  }
  Hid ds(H5Dcreate2(group.get(), name.c_str(), H5Type<T>::File(), space.get(), H5P_DEFAULT,
                    dcpl.get(), H5P_DEFAULT),
         H5Dclose, path_, dataset, "cannot create dataset");
  if (n > 0) {
    Check(H5Dwrite(ds.get(), H5Type<T>::Mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path_, dataset,
          "cannot write dataset");
  }
}

template void H5Writer::Write<float>(const std::string&, const float*, const Shape&);
template void H5Writer::Write<double>(const std::string&, const double*, const Shape&);
template void H5Writer::Write<int32_t>(const std::string&, const int32_t*, const Shape&);
template void H5Writer::Write<int64_t>(const std::string&, const int64_t*, const Shape&);
template void H5Writer::Write<uint8_t>(const std::string&, const uint8_t*, const Shape&);

void H5Writer::WriteStrings(const std::string& dataset, const std::vector<std::string>& values) {
  if (file_ < 0) throw StoreError(fmt::format("{}: write to closed file", path_));
  auto [parent, name] = ParentAndName(path_, dataset);
  Hid group(EnsureGroup(parent), H5Gclose);
  hsize_t dims[1] = {values.size()};
  Hid space(H5Screate_simple(1, dims, nullptr), H5Sclose, path_, dataset,
            "cannot create dataspace");
  Hid type = Utf8StringType(path_, dataset);
  Hid ds(H5Dcreate2(group.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT,
                    H5P_DEFAULT),
         H5Dclose, path_, dataset, "cannot create dataset");
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  if (!ptrs.empty()) {
    Check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), path_,
          dataset, "cannot write strings");
  }
}

namespace {
Hid OpenForAttr(hid_t file, const std::string& path, const std::string& object) {
  if (ObjectExists(file, object)) {
    return Hid(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose, path, object,
               "cannot open object");
  }
  Hid g = OpenOrCreateGroup(file, path, object);
  return Hid(g.release(), H5Gclose);
}
}  // namespace

void H5Writer::Attr(const std::string& object, const std::string& name, const std::string& value) {
  if (file_ < 0) throw StoreError(fmt::format("{}: write to closed file", path_));
  Hid obj = OpenForAttr(file_, path_, object);
  WriteStringAttr(obj.get(), path_, object, name, value);
}

void H5Writer::Attr(const std::string& object, const std::string& name, double value) {
  if (file_ < 0) throw StoreError(fmt::format("{}: write to closed file", path_));
  Hid obj = OpenForAttr(file_, path_, object);
  WriteScalarAttr(obj.get(), path_, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void H5Writer::Attr(const std::string& object, const std::string& name, int64_t value) {
  if (file_ < 0) throw StoreError(fmt::format("{}: write to closed file", path_));
  Hid obj = OpenForAttr(file_, path_, object);
  WriteScalarAttr(obj.get(), path_, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void H5Writer::Close() {
  if (file_ < 0) return;
  Check(H5Fclose(std::exchange(file_, -1)), path_, "", "cannot close file");
}

// ---- H5Reader ----

H5Reader::H5Reader(const std::string& path) : path_(path) {
  InitHdf5();
  Hid fapl = FileAccessPlist(path);
  file_ =
      Check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), path, "", "cannot open HDF5 file");
}

H5Reader::~H5Reader() {
  if (file_ >= 0) {
    H5Fclose(file_);
    H5Eclear2(H5E_DEFAULT);
  }
}

bool H5Reader::Has(const std::string& object) const { return ObjectExists(file_, object); }

Shape H5Reader::DatasetShape(const std::string& dataset) const {
  Hid ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose, path_, dataset,
         "cannot open dataset");
  Hid space(H5Dget_space(ds.get()), H5Sclose, path_, dataset, "cannot get dataspace");
  int rank = Check(H5Sget_simple_extent_ndims(space.get()), path_, dataset, "cannot get rank");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  Check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), path_, dataset,
        "cannot get dims");
  return Shape(dims.begin(), dims.end());
}

template <typename T>
std::vector<T> H5Reader::Read(const std::string& dataset, Shape* shape) const {
  Hid ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose, path_, dataset,
         "cannot open dataset");
  Hid type(H5Dget_type(ds.get()), H5Tclose, path_, dataset, "cannot get type");
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    throw StoreError(fmt::format("{}: dataset '{}' is not numeric", path_, dataset));
  }
  Shape s = DatasetShape(dataset);
  size_t n = 1;
  for (int64_t d : s) n *= static_cast<size_t>(d);
  std::vector<T> out(n);
  if (n > 0) {
    Check(H5Dread(ds.get(), H5Type<T>::Mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), path_,
          dataset, "cannot read dataset");
  }
  if (shape) *shape = std::move(s);
  return out;
}

template <typename T>
void H5Reader::ReadRows(const std::string& dataset, int64_t row_begin, int64_t row_count,
                        T* out) const {
  Hid ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose, path_, dataset,
         "cannot open dataset");
  Hid space(H5Dget_space(ds.get()), H5Sclose, path_, dataset, "cannot get dataspace");
  const int rank =
      Check(H5Sget_simple_extent_ndims(space.get()), path_, dataset, "cannot get rank");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  Check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), path_, dataset,
        "cannot get dims");
  if (rank < 1 || row_begin < 0 || row_count < 0 ||
      static_cast<hsize_t>(row_begin + row_count) > dims[0]) {
    throw StoreError(fmt::format("{}: rows [{}, {}) are outside dataset '{}'", path_, row_begin,
                                 row_begin + row_count, dataset));
  }
  if (row_count == 0) return;
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = static_cast<hsize_t>(row_begin);
  count[0] = static_cast<hsize_t>(row_count);
  Check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        path_, dataset, "cannot select rows");
  Hid mem(H5Screate_simple(rank, count.data(), nullptr), H5Sclose, path_, dataset,
          "cannot create dataspace");
  Check(H5Dread(ds.get(), H5Type<T>::Mem(), mem.get(), space.get(), H5P_DEFAULT, out), path_,
        dataset, "cannot read rows of dataset");
}

template void H5Reader::ReadRows<float>(const std::string&, int64_t, int64_t, float*) const;
template void H5Reader::ReadRows<double>(const std::string&, int64_t, int64_t, double*) const;
template void H5Reader::ReadRows<int32_t>(const std::string&, int64_t, int64_t, int32_t*) const;
template void H5Reader::ReadRows<int64_t>(const std::string&, int64_t, int64_t, int64_t*) const;
template void H5Reader::ReadRows<uint8_t>(const std::string&, int64_t, int64_t, uint8_t*) const;

template std::vector<float> H5Reader::Read<float>(const std::string&, Shape*) const;
template std::vector<double> H5Reader::Read<double>(const std::string&, Shape*) const;
template std::vector<int32_t> H5Reader::Read<int32_t>(const std::string&, Shape*) const;
template std::vector<int64_t> H5Reader::Read<int64_t>(const std::string&, Shape*) const;
template std::vector<uint8_t> H5Reader::Read<uint8_t>(const std::string&, Shape*) const;

std::vector<std::string> H5Reader::ReadStrings(const std::string& dataset) const {
  Hid ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose, path_, dataset,
         "cannot open dataset");
  Hid type(H5Dget_type(ds.get()), H5Tclose, path_, dataset, "cannot get type");
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw StoreError(fmt::format("{}: dataset '{}' does not hold strings", path_, dataset));
  }
  Hid space(H5Dget_space(ds.get()), H5Sclose, path_, dataset, "cannot get dataspace");
  hssize_t n = Check(H5Sget_simple_extent_npoints(space.get()), path_, dataset, "cannot count");
  return ReadStringData(type.get(), static_cast<size_t>(n), path_, dataset,
                        [&](hid_t mem, void* buf) {
                          return H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
                        });
}

std::vector<std::string> H5Reader::List(const std::string& group) const {
  Hid g(H5Gopen2(file_, group.c_str(), H5P_DEFAULT), H5Gclose, path_, group, "cannot open group");
  H5G_info_t info{};
  Check(H5Gget_info(g.get(), &info), path_, group, "cannot inspect group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = Check(
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT),
        path_, group, "cannot list group");
    std::string name(static_cast<size_t>(len) + 1, '\0');
    Check(H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                             H5P_DEFAULT),
          path_, group, "cannot list group");
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
// The attribute if present (nullopt when absent); StoreError when the object is missing or
// the attribute is not a single value.
std::optional<Hid> OpenScalarAttr(hid_t file, const std::string& path, const std::string& object,
                                  const std::string& name) {
  const std::string where = object + "@" + name;
  if (!ObjectExists(file, object)) {
    throw StoreError(fmt::format("{}: no object '{}'", path, object));
  }
  // Open the object first: HDF5 1.10 reads variable-length attribute data from the wrong file
  // when the attribute is opened by name through an external link.
  Hid obj(H5Oopen(file, object.c_str(), H5P_DEFAULT), H5Oclose, path, object, "cannot open object");
  if (Check(H5Aexists(obj.get(), name.c_str()), path, where, "cannot look up attribute") == 0) {
    return std::nullopt;
  }
  Hid attr(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT), H5Aclose, path, where,
           "cannot open attribute");
  Hid space(H5Aget_space(attr.get()), H5Sclose, path, where, "cannot get dataspace");
  if (Check(H5Sget_simple_extent_npoints(space.get()), path, where, "cannot count") != 1) {
    throw StoreError(fmt::format("{}: attribute '{}' is not a single value", path, where));
  }
  return attr;
}

H5T_class_t AttrClass(const Hid& attr, const std::string& path, const std::string& where) {
  Hid type(H5Aget_type(attr.get()), H5Tclose, path, where, "cannot get type");
  return H5Tget_class(type.get());
}
}  // namespace

std::optional<std::string> H5Reader::AttrString(const std::string& object,
                                                const std::string& name) const {
  auto attr = OpenScalarAttr(file_, path_, object, name);
  if (!attr) return std::nullopt;
  const std::string where = object + "@" + name;
  Hid type(H5Aget_type(attr->get()), H5Tclose, path_, where, "cannot get type");
  if (H5Tget_class(type.get()) != H5T_STRING) {
    throw StoreError(fmt::format("{}: attribute '{}' is not a string", path_, where));
  }
  auto v = ReadStringData(type.get(), 1, path_, where,
                          [&](hid_t mem, void* buf) { return H5Aread(attr->get(), mem, buf); });
  return v.front();
}

std::optional<double> H5Reader::AttrDouble(const std::string& object,
                                           const std::string& name) const {
  auto attr = OpenScalarAttr(file_, path_, object, name);
  if (!attr) return std::nullopt;
  const std::string where = object + "@" + name;
  H5T_class_t cls = AttrClass(*attr, path_, where);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    throw StoreError(fmt::format("{}: attribute '{}' is not numeric", path_, where));
  }
  double v = 0;
  Check(H5Aread(attr->get(), H5T_NATIVE_DOUBLE, &v), path_, where, "cannot read attribute");
  return v;
}

std::optional<int64_t> H5Reader::AttrInt(const std::string& object, const std::string& name) const {
  auto attr = OpenScalarAttr(file_, path_, object, name);
  if (!attr) return std::nullopt;
  const std::string where = object + "@" + name;
  if (AttrClass(*attr, path_, where) != H5T_INTEGER) {
    throw StoreError(fmt::format("{}: attribute '{}' is not an integer", path_, where));
  }
  int64_t v = 0;
  Check(H5Aread(attr->get(), H5T_NATIVE_INT64, &v), path_, where, "cannot read attribute");
  return v;
}

// ---- shard files ----

void WriteShardAttributes(H5Writer& w, const ShardFileHeader& h,
                          const std::vector<std::pair<std::string, double>>& metrics) {
  const ShardKey& k = h.key;
  if (k.id().hex.empty()) throw StoreError(fmt::format("{}: shard id is empty", w.path()));
  Json m = Json::object();
  for (const auto& [name, value] : metrics) {
    if (name.empty() || m.contains(name)) {
      throw StoreError(fmt::format("{}: empty or duplicate metric name '{}'", w.path(), name));
    }
    m[name] = value;  // non-finite values become null; metric.<name> keeps them exactly
  }
  w.Attr("/", "seedgrid_shard_id", k.id().hex);
  w.Attr("/", "seedgrid_sweep", h.sweep);
  w.Attr("/", "seedgrid_stage", k.stage());
  w.Attr("/", "seedgrid_kind", k.kind());
  w.Attr("/", "seedgrid_role", std::string(ToString(k.role())));
  w.Attr("/", "seedgrid_seed", k.seed());
  w.Attr("/", "seedgrid_attempt", h.attempt);
  w.Attr("/", "seedgrid_params", k.params_json());
  w.Attr("/", "seedgrid_axes", k.axes_json());
  w.Attr("/", "seedgrid_needs", k.needs_json());
  // Callers that know more versions (LibTorch, CUDA) overwrite this attribute afterwards.
  w.Attr("/", "seedgrid_versions", VersionsJson());
  w.Attr("/", "seedgrid_metrics", m.dump());
  for (const auto& [name, value] : metrics) w.Attr("/", "metric." + name, value);
}

std::optional<ShardFileInfo> ReadShardFileInfo(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  try {
    H5Reader r(path);
    auto id = r.AttrString("/", "seedgrid_shard_id");
    if (!id || id->empty()) return std::nullopt;
    auto sweep = r.AttrString("/", "seedgrid_sweep");
    auto stage = r.AttrString("/", "seedgrid_stage");
    auto kind = r.AttrString("/", "seedgrid_kind");
    auto role = r.AttrString("/", "seedgrid_role");
    auto seed = r.AttrInt("/", "seedgrid_seed");
    auto attempt = r.AttrInt("/", "seedgrid_attempt");
    auto params = r.AttrString("/", "seedgrid_params");
    auto axes = r.AttrString("/", "seedgrid_axes");
    auto needs = r.AttrString("/", "seedgrid_needs");
    auto metrics = r.AttrString("/", "seedgrid_metrics");
    auto versions = r.AttrString("/", "seedgrid_versions");
    if (!sweep || !stage || !kind || !role || !seed || !attempt || !params || !axes || !needs ||
        !metrics) {
      return std::nullopt;
    }
    ShardKey::Fields f;
    f.id = ShardId{*id};
    f.stage = *stage;
    f.kind = *kind;
    f.role = ParseShardRole(*role);
    f.seed = *seed;
    f.params_json = *params;
    f.axes_json = *axes;
    for (const auto& n : Json::parse(*needs)) f.needs.push_back({n.get<std::string>()});
    // Parsed now: a file whose JSON does not parse is unreadable, as it always was.
    Json params_value = Json::parse(*params), axes_value = Json::parse(*axes);
    ShardFileInfo info;
    info.header.key = ShardKey(std::move(f), std::move(params_value), std::move(axes_value));
    info.header.sweep = *sweep;
    info.header.attempt = *attempt;
    if (versions) info.versions = Json::parse(*versions);
    const Json metric_json = Json::parse(*metrics);
    for (const auto& [name, v] : metric_json.items()) {
      auto exact = r.AttrDouble("/", "metric." + name);
      double value = exact           ? *exact
                     : v.is_number() ? v.get<double>()
                                     : std::numeric_limits<double>::quiet_NaN();
      info.metrics.emplace_back(name, value);
    }
    return info;
  } catch (const StoreError&) {
    return std::nullopt;
  } catch (const Json::exception&) {
    return std::nullopt;
  } catch (const std::invalid_argument&) {  // a role that is none of ShardRole's
    return std::nullopt;
  }
}

// ---- paths and publication ----

std::string ShardFilePath(const std::string& out_dir, const std::string& sweep,
                          const std::string& stage, const ShardId& id) {
  return (fs::path(out_dir) / sweep / stage / (id.hex + ".h5")).string();
}

std::string TempPathFor(const std::string& final_path, int attempt) {
  return fmt::format("{}.tmp-{}-{}-a{}", final_path, Hostname(), ::getpid(), attempt);
}

void PublishFile(const std::string& temp_path, const std::string& final_path) {
  try {
    FsyncFile(temp_path);
    fs::path dir = fs::path(final_path).parent_path();
    MakeDirsDurable(dir.string());
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      throw std::system_error(errno, std::generic_category(),
                              "rename " + temp_path + " -> " + final_path);
    }
    FsyncDir(dir.empty() ? "." : dir.string());
  } catch (const std::system_error& e) {
    throw StoreError(fmt::format("cannot publish {}: {}", final_path, e.what()));
  }
}

namespace {

// write(2) of a whole buffer to a new file, checked to the last close(2) (NFS reports a full
// disk or quota only there). Throws StoreError "writing <path>: <reason>".
void WriteNewFile(const std::string& path, const void* data, size_t size) {
  auto fail = [&](int err) {
    throw StoreError(fmt::format("writing {}: {}", path, std::strerror(err)));
  };
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(errno);
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      fail(err);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) fail(errno);
}

}  // namespace

void WriteFileAtomically(const std::string& final_path, std::string_view bytes) {
  const std::string temp = TempPathFor(final_path, 0);
  try {
    WriteNewFile(temp, bytes.data(), bytes.size());
    PublishFile(temp, final_path);
  } catch (...) {
    ::unlink(temp.c_str());
    throw;
  }
}

// The index is built in memory (the core driver, no backing store) and written by us: no
// HDF5 call touches the disk, so a full disk is one failed write(2) with its errno, never an
// H5Fclose that fails half-way (see InitHdf5). It holds one small link per done shard.
void WriteResultsIndex(const std::string& out_dir, const std::string& sweep,
                       const std::vector<std::pair<std::string, std::vector<ShardId>>>& stages) {
  std::vector<std::pair<std::string, std::vector<ResultsLink>>> links;
  for (const auto& [stage, ids] : stages) {
    auto& l = links.emplace_back(stage, std::vector<ResultsLink>{}).second;
    for (const auto& id : ids) l.push_back({id, stage + "/" + id.hex + ".h5"});
  }
  WriteResultsIndex(out_dir, sweep, links);
}

void WriteResultsIndex(
    const std::string& out_dir, const std::string& sweep,
    const std::vector<std::pair<std::string, std::vector<ResultsLink>>>& stages) {
  InitHdf5();
  const std::string final_path = (fs::path(out_dir) / sweep / "results.h5").string();
  const std::string temp = TempPathFor(final_path, 0);
  try {
    MakeDirsDurable((fs::path(out_dir) / sweep).string());
  } catch (const std::system_error& e) {
    throw StoreError(fmt::format("cannot create {}: {}", final_path, e.what()));
  }
  std::vector<char> image;
  {
    Hid fapl = FileAccessPlist(temp);
    Check(H5Pset_fapl_core(fapl.get(), 1 << 16, /*backing_store=*/false), temp, "",
          "cannot select the in-memory driver");
    Hid file(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose, temp, "",
             "cannot create file");
    {
      Hid root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose, temp, "/", "cannot open root");
      WriteStringAttr(root.get(), temp, "/", "seedgrid_sweep", sweep);
    }
    for (const auto& [stage, links] : stages) {
      if (stage.empty() || stage.find('/') != std::string::npos) {
        throw StoreError(fmt::format("{}: invalid stage name '{}'", temp, stage));
      }
      Hid group(H5Gcreate2(file.get(), stage.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                H5Gclose, temp, stage, "cannot create group");
      for (const auto& [id, target] : links) {
        // Relative to results.h5's directory, which HDF5 searches for relative targets.
        Check(H5Lcreate_external(target.c_str(), "/", group.get(), id.hex.c_str(), H5P_DEFAULT,
                                 H5P_DEFAULT),
              temp, stage + "/" + id.hex, "cannot create external link");
      }
    }
    // HDF5 1.10.8 takes the image without flushing the metadata cache first (the image of an
    // unflushed file does not open): flush it ourselves. In memory: no I/O can fail here.
    Check(H5Fflush(file.get(), H5F_SCOPE_LOCAL), temp, "", "cannot flush the file image");
    const ssize_t size =
        Check(H5Fget_file_image(file.get(), nullptr, 0), temp, "", "cannot size the file image");
    image.resize(static_cast<size_t>(size));
    Check(H5Fget_file_image(file.get(), image.data(), image.size()), temp, "",
          "cannot take the file image");
    Check(H5Fclose(file.release()), temp, "", "cannot close file");
  }
  // Removes the temp file if writing or publishing it fails.
  struct TempGuard {
    const std::string& path;
    bool armed = true;
    ~TempGuard() {
      if (armed) ::unlink(path.c_str());
    }
  } guard{temp};
  WriteNewFile(temp, image.data(), image.size());
  PublishFile(temp, final_path);
  guard.armed = false;
}

}  // namespace seedgrid
