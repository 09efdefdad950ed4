// Token datasets: HDF5 int32 [N, T] arrays, tokenised upstream (or written from the synthetic
// task). No LibTorch.
//
// A TokenSource gives rows by index from either the synthetic task (unbounded, one Split) or a
// file, so experiments take `data: {source: synthetic | file, path, dataset}` alike.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/store.h"
#include "experiments/data/synthetic.h"

namespace seedgrid {

// Writes rows (row-major int32 [rows, seq_len]) as dataset `name` with attrs vocab_size and,
// for synthetic rows, the task JSON ("seedgrid_task").
void WriteTokenDataset(H5Writer& w, const std::string& name, const std::vector<int32_t>& tokens,
                       int64_t rows, int64_t seq_len, int64_t vocab_size,
                       const Json& task = Json());

class TokenSource {
 public:
  // Rows of the synthetic pretraining mix (kind "pretrain"), or only induction rows
  // ("induction"), or persona dilemma rows ("persona"), from `split`.
  static TokenSource Synthetic(const synth::TaskSpec& spec, synth::Split split,
                               const std::string& kind = "pretrain");
  // Loads int32 [N, T] dataset `dataset` of `path` (whole array, read once). Throws StoreError
  // or std::runtime_error naming the file when it is missing, not 2-D, or holds tokens
  // outside [0, vocab_size) (vocab_size <= 0: unchecked).
  static TokenSource File(const std::string& path, const std::string& dataset,
                          int64_t vocab_size = 0);

  // Non-overlapping windows of `window` tokens cut from a token stream (the rest dropped).
  // Throws std::runtime_error when the stream is shorter than one window.
  static TokenSource Windows(const std::vector<int32_t>& stream, int64_t window,
                             const std::string& origin);

  int64_t size() const { return size_; }  // rows; INT64_MAX for synthetic sources
  int64_t seq_len() const { return seq_len_; }
  // Rows [start, start + count), row-major. Throws std::out_of_range past the end of a file.
  std::vector<int32_t> Rows(int64_t start, int64_t count) const;

 private:
  TokenSource() = default;
  synth::TaskSpec spec_;
  synth::Split split_ = synth::Split::kPretrain;
  std::string kind_;
  std::shared_ptr<const std::vector<int32_t>> file_rows_;  // set for file sources
  int64_t size_ = 0;
  int64_t seq_len_ = 0;
};

}  // namespace seedgrid
