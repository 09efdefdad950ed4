#include "experiments/data/tokens.h"

#include <limits>
#include <stdexcept>

#include <fmt/format.h>

namespace seedgrid {

void WriteTokenDataset(H5Writer& w, const std::string& name, const std::vector<int32_t>& tokens,
                       int64_t rows, int64_t seq_len, int64_t vocab_size, const Json& task) {
  if (static_cast<int64_t>(tokens.size()) != rows * seq_len)
    throw std::invalid_argument(fmt::format("WriteTokenDataset {}: {} tokens for [{}, {}]", name,
                                            tokens.size(), rows, seq_len));
  w.Write(name, tokens.data(), Shape{rows, seq_len});
  w.Attr(name, "vocab_size", vocab_size);
  if (!task.is_null()) w.Attr(name, "seedgrid_task", task.dump());
}

TokenSource TokenSource::Synthetic(const synth::TaskSpec& spec, synth::Split split,
                                   const std::string& kind) {
  if (kind != "pretrain" && kind != "induction" && kind != "persona")
    throw std::invalid_argument(fmt::format(
        "synthetic token source: kind '{}' is not pretrain, induction or persona", kind));
  spec.Validate();
  TokenSource s;
  s.spec_ = spec;
  s.split_ = split;
  s.kind_ = kind;
  s.size_ = std::numeric_limits<int64_t>::max();
  s.seq_len_ = spec.seq_len;
  return s;
}

TokenSource TokenSource::File(const std::string& path, const std::string& dataset,
                              int64_t vocab_size) {
  H5Reader r(path);
  if (!r.Has(dataset))
    throw std::runtime_error(fmt::format("token file {}: no dataset '{}'", path, dataset));
  Shape shape;
  auto rows = std::make_shared<std::vector<int32_t>>(r.Read<int32_t>(dataset, &shape));
  if (shape.size() != 2 || shape[1] < 2)
    throw std::runtime_error(
        fmt::format("token file {}: dataset '{}' must be int32 [N, T] with T >= 2", path, dataset));
  if (vocab_size > 0) {
    for (size_t i = 0; i < rows->size(); ++i) {
      const int32_t t = (*rows)[i];
      if (t < 0 || t >= vocab_size)
        throw std::runtime_error(
            fmt::format("token file {}: dataset '{}' row {} holds token {} outside [0, {})", path,
                        dataset, static_cast<int64_t>(i) / shape[1], t, vocab_size));
    }
  }
  TokenSource s;
  s.kind_ = "file";
  s.file_rows_ = std::move(rows);
  s.size_ = shape[0];
  s.seq_len_ = shape[1];
  return s;
}

std::vector<int32_t> TokenSource::Rows(int64_t start, int64_t count) const {
  if (start < 0 || count < 0 || (file_rows_ && start + count > size_))
    throw std::out_of_range(
        fmt::format("token rows [{}, {}) outside [0, {})", start, start + count, size_));
  if (file_rows_) {
    const auto* p = file_rows_->data() + start * seq_len_;
    return std::vector<int32_t>(p, p + count * seq_len_);
  }
  if (kind_ == "induction") return synth::MakeInductionRows(spec_, split_, start, count).tokens;
  if (kind_ == "persona") return synth::MakePersonaRows(spec_, split_, start, count).tokens;
  return synth::MakePretrainRows(spec_, split_, start, count).tokens;
}

TokenSource TokenSource::Windows(const std::vector<int32_t>& stream, int64_t window,
                                 const std::string& origin) {
  const int64_t n = window > 0 ? static_cast<int64_t>(stream.size()) / window : 0;
  if (n < 1)
    throw std::runtime_error(
        fmt::format("{}: {} tokens, fewer than one window of {}", origin, stream.size(), window));
  TokenSource s;
  s.file_rows_ =
      std::make_shared<const std::vector<int32_t>>(stream.begin(), stream.begin() + n * window);
  s.size_ = n;
  s.seq_len_ = window;
  return s;
}

}  // namespace seedgrid
