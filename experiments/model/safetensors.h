// safetensors files (https://github.com/huggingface/safetensors), without LibTorch.
//
// Layout: u64 little-endian N, N bytes of JSON header {name: {dtype, shape, data_offsets:
// [begin, end)}, "__metadata__": {str: str}}, then the data; offsets are relative to the data
// start. The reader memory-maps the file and validates everything before handing out a view:
// header length within the file, valid JSON object, known dtype, non-negative shape, offsets in
// range and non-overlapping, byte size == numel · dtype size. Every failure is a
// SafetensorsError naming the file (and the tensor) — never a crash on a malformed file.
//
// Two ways to the data: the mapped bytes (TensorView::data: zero-copy, each page faulted in on
// first touch) and Read(), pread(2) from the descriptor kept open beside the mapping. A loader
// that copies a tensor into storage of its own uses Read: the kernel copies from the page cache
// straight into the destination, with none of the mapping's page faults. A loader whose storage
// can be the file's bytes as stored keeps the mapping itself (mapping(), MutableData): its
// tensors are the page cache's pages, no copy at all (Model::LoadWeights; BENCHMARKS.md §12).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrid {

class SafetensorsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class StDType : uint8_t { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };
std::string_view ToString(StDType t);  // "F32", ...
size_t StDTypeSize(StDType t);

struct TensorView {
  std::string name;
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // valid while the SafetensorsFile lives
  size_t nbytes = 0;
  int64_t numel() const;
};

// A memory-mapped safetensors file, its descriptor kept open for Read. Move-only; closes in the
// destructor and unmaps when the last holder of mapping() is gone.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws SafetensorsError
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws SafetensorsError "<file>: missing tensor '<name>'".
  const TensorView& Get(const std::string& name) const;
  std::vector<std::string> Names() const;  // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Copies bytes [begin, begin + n) of `view`'s data (a view of this file) into `out` with
  // pread(2). Throws SafetensorsError naming the file and tensor for a range outside the tensor,
  // an I/O error or a file that ends early (truncated since it was opened).
  void Read(const TensorView& view, size_t begin, size_t n, void* out) const;

  // The whole file's mapping, kept alive by the returned handle after this object is gone (the
  // deleter of a tensor viewing it holds one). It is MAP_PRIVATE and read-only until
  // MakeWritable opens a range: a write there copies that page for this process and never
  // reaches the file (only those ranges count against the kernel's commit limit), while pages
  // never written are the page cache's own, shared with every process mapping the file (e.g.
  // the worker ranks of one node). Until a page is written it IS the page cache's page: a file
  // rewritten in place (safetensors' save_file, hence HF's save_pretrained into an existing
  // directory, truncates and rewrites) changes what the mapping reads, and reading past a
  // truncation is SIGBUS. Replace a checkpoint a running process maps by writing a new file and
  // renaming it (what seedgrid's Model::Save does), or load with SEEDGRID_MODEL_LOAD=copy.
  std::shared_ptr<uint8_t> mapping() const { return map_; }
  // view.data (and `nbytes` bytes from it, which may run on into the tensors that follow) made
  // writable in mapping(), as a writable pointer. Throws SafetensorsError when the range is not
  // inside this file or mprotect(2) fails.
  uint8_t* MakeWritable(const TensorView& view, size_t nbytes) const;
  bool Owns(const TensorView& view) const;  // `view` lies inside this file's mapping

 private:
  std::string path_;
  int fd_ = -1;                   // open for Read while the file lives
  std::shared_ptr<uint8_t> map_;  // munmap in its deleter
  size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write; data is borrowed (numel · dtype size bytes, little-endian).
struct TensorToWrite {
  std::string name;
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// Writes `path` atomically (temp name in the same directory, fsync, rename). Tensors are laid
// out in the given order; the header is padded with spaces to a multiple of 8 bytes. Throws
// SafetensorsError on a duplicate or empty name or an I/O failure.
void WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Converts F32/F16/BF16/F64 element data to float32 (out must hold numel floats). Throws
// SafetensorsError naming the tensor for other dtypes.
void ConvertToFloat32(const TensorView& view, float* out, const std::string& file = "");

}  // namespace seedgrid
