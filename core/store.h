// The store: one HDF5 file per shard, `<out>/<sweep>/<stage>/<shard_id>.h5`, written under a
// temporary name (`<shard_id>.h5.tmp-<host>-<pid>-<attempt>`) and published by rename(2) only
// when complete, so a reader never sees a partial file and a crash leaves only a temp file.
//
// Every shard file carries root attributes (so the registry can be rebuilt, `seedgrid reindex`):
//   seedgrid_shard_id, seedgrid_sweep, seedgrid_stage, seedgrid_kind, seedgrid_seed (int64),
//   seedgrid_params (JSON text), seedgrid_axes (JSON text), seedgrid_needs (JSON list),
//   seedgrid_role, seedgrid_attempt (int64), seedgrid_versions (JSON text),
//   seedgrid_metrics (JSON object name -> value), and one `metric.<name>` float64 attr each.
// Counts are int64, sums float64. Files open in h5py as they are.
//
// Every HDF5 handle is owned by an RAII wrapper; every HDF5 call is checked and a failure is
// thrown as StoreError naming the file and object.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/shard_key.h"
#include "core/types.h"

namespace seedgrid {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using Shape = std::vector<int64_t>;

// Writes one HDF5 file. Dataset paths may contain groups ("eval/logratio"); missing groups are
// created. Element types: float, double, int32_t, int64_t, uint8_t.
class H5Writer {
 public:
  explicit H5Writer(const std::string& path);  // creates/truncates
  ~H5Writer();                                 // closes; never throws
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  const std::string& path() const { return path_; }

  template <typename T>
  void Write(const std::string& dataset, const T* data, const Shape& shape);
  template <typename T>
  void Write(const std::string& dataset, const std::vector<T>& data) {
    Write(dataset, data.data(), Shape{static_cast<int64_t>(data.size())});
  }
  void WriteStrings(const std::string& dataset, const std::vector<std::string>& values);

  // Attributes on a group or dataset ("/" is the root); the object must exist (groups are
  // created when missing).
  void Attr(const std::string& object, const std::string& name, const std::string& value);
  void Attr(const std::string& object, const std::string& name, double value);
  void Attr(const std::string& object, const std::string& name, int64_t value);

  void Close();  // flushes and closes; throws StoreError on failure

 private:
  std::string path_;
  int64_t file_ = -1;  // hid_t
  int64_t EnsureGroup(const std::string& group);
};

// Reads one HDF5 file (read-only).
class H5Reader {
 public:
  explicit H5Reader(const std::string& path);  // throws StoreError if missing or not HDF5
  ~H5Reader();
  H5Reader(const H5Reader&) = delete;
  H5Reader& operator=(const H5Reader&) = delete;

  bool Has(const std::string& object) const;
  Shape DatasetShape(const std::string& dataset) const;
  // Converts from the stored type (HDF5 converts between numeric types).
  template <typename T>
  std::vector<T> Read(const std::string& dataset, Shape* shape = nullptr) const;
  // Rows [row_begin, row_begin + row_count) along the first dimension into `out` (row_count ×
  // the other dimensions' elements), converting like Read: for arrays too large to hold twice.
  template <typename T>
  void ReadRows(const std::string& dataset, int64_t row_begin, int64_t row_count, T* out) const;
  std::vector<std::string> ReadStrings(const std::string& dataset) const;
  std::vector<std::string> List(const std::string& group) const;  // member names
  std::optional<std::string> AttrString(const std::string& object, const std::string& name) const;
  std::optional<double> AttrDouble(const std::string& object, const std::string& name) const;
  std::optional<int64_t> AttrInt(const std::string& object, const std::string& name) const;

 private:
  std::string path_;
  int64_t file_ = -1;
};

// The shard a file holds (its key: the seedgrid_* attributes above but sweep and attempt) and
// the attempt that wrote it.
struct ShardFileHeader {
  ShardKey key;
  std::string sweep;
  int64_t attempt = 0;
};

// What a shard file says about itself (its root attributes).
struct ShardFileInfo {
  ShardFileHeader header;
  Json versions = Json::object();
  std::vector<std::pair<std::string, double>> metrics;
};

// Writes the root attributes above (metrics are a std::vector of name/value).
void WriteShardAttributes(H5Writer& w, const ShardFileHeader& header,
                          const std::vector<std::pair<std::string, double>>& metrics);
// Reads them back; nullopt when the file is missing, unreadable or lacks seedgrid_shard_id.
std::optional<ShardFileInfo> ReadShardFileInfo(const std::string& path);

// Paths.
std::string ShardFilePath(const std::string& out_dir, const std::string& sweep,
                          const std::string& stage, const ShardId& id);
std::string TempPathFor(const std::string& final_path, int attempt);
// fsync + rename(2) + fsync of the directory. Throws StoreError.
void PublishFile(const std::string& temp_path, const std::string& final_path);
// `bytes` as the file `final_path`, atomically: a temp file beside it (checked writes to the
// last close), then PublishFile. On failure the temp file is removed and StoreError says why,
// the system's reason included ("No space left on device").
void WriteFileAtomically(const std::string& final_path, std::string_view bytes);

// Rewrites <out>/<sweep>/results.h5 (atomically): group per stage, one external link per
// done shard named by shard id, pointing at the shard file by relative path.
void WriteResultsIndex(const std::string& out_dir, const std::string& sweep,
                       const std::vector<std::pair<std::string, std::vector<ShardId>>>& stages);
// The same with each link's target given: the shard file's path relative to <out>/<sweep>/
// (a shard shared with another sweep lives in that sweep's directory), or absolute.
struct ResultsLink {
  ShardId id;
  std::string target;
};
void WriteResultsIndex(const std::string& out_dir, const std::string& sweep,
                       const std::vector<std::pair<std::string, std::vector<ResultsLink>>>& stages);

}  // namespace seedgrid
