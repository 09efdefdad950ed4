// lora_steer on the user's text (data.source: text): the rows' ids from the token cache the
// planner adds (experiments/tokens/cache.h), tokenized there through the tokenizer and prompt
// template the spec names (experiments/data/text_data.h).
#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "experiments/data/text_data.h"
#include "experiments/lora_steer/layout.h"
#include "experiments/lora_steer/steer_data.h"
#include "experiments/tokens/cache.h"
#include "experiments/tokens/layout.h"
#include "text/tokenizer.h"

namespace seedgrid::steer {
namespace {

using data::Tokenized;

// Rows [B, T] right-padded with token 0 (causal attention: a pad never reaches an earlier
// position), and the loss mask [B, T-1] of the positions predicting answer tokens.
std::pair<torch::Tensor, torch::Tensor> PadBatch(const std::vector<Tokenized>& rows,
                                                 const std::vector<int64_t>& idx) {
  int64_t T = 2;
  for (const int64_t i : idx) T = std::max<int64_t>(T, static_cast<int64_t>(rows[i].ids.size()));
  const auto B = static_cast<int64_t>(idx.size());
  auto tokens = torch::zeros({B, T}, torch::kLong);
  auto mask = torch::zeros({B, T - 1}, torch::kFloat32);
  auto tok = tokens.accessor<int64_t, 2>();
  auto m = mask.accessor<float, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& r = rows[static_cast<size_t>(idx[static_cast<size_t>(b)])];
    const auto n = static_cast<int64_t>(r.ids.size());
    for (int64_t t = 0; t < n; ++t) tok[b][t] = r.ids[static_cast<size_t>(t)];
    // Target t+1 is an answer token when t+1 >= prompt_len.
    for (int64_t t = std::max<int64_t>(0, r.prompt_len - 1); t + 1 < n; ++t) m[b][t] = 1;
  }
  return {tokens, mask};
}

// Logits only from the earliest position that predicts an answer token in the batch: the LM head
// (V × d per position) is most of a small model's cost, and the prompts' positions before it
// carry no loss.
RowsLoss PairLoss(std::shared_ptr<const std::vector<Tokenized>> rows) {
  return [rows](const Model& model, const ForwardOptions& opts, const std::vector<int64_t>& idx) {
    auto [tokens, mask] = PadBatch(*rows, idx);
    int64_t first = tokens.size(1) - 2;
    for (const int64_t i : idx)
      first = std::min(first, std::max<int64_t>(0, (*rows)[static_cast<size_t>(i)].prompt_len - 1));
    const int64_t P = tokens.size(1) - 1 - first;
    tokens = tokens.to(model.device());
    mask = mask.narrow(1, first, P).to(model.device());
    ForwardOptions o = opts;
    o.logit_positions = torch::arange(first, first + P, torch::kLong);
    const auto logits = model.Forward(tokens, o);  // [B, P, V]
    const int64_t V = logits.size(-1);
    const auto ce = torch::nn::functional::cross_entropy(
                        logits.reshape({-1, V}), tokens.narrow(1, first + 1, P).reshape({-1}),
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                        .view_as(mask);
    // Each row's mean over its answer tokens, summed over rows (steer_data.h's contract).
    return ((ce * mask).sum(1) / mask.sum(1).clamp_min(1)).sum();
  };
}

// Rows grouped by length: indices of rows with equal token counts.
std::map<size_t, std::vector<int64_t>> ByLength(const std::vector<std::vector<int32_t>>& rows) {
  std::map<size_t, std::vector<int64_t>> groups;
  for (size_t i = 0; i < rows.size(); ++i)
    groups[rows[i].size()].push_back(static_cast<int64_t>(i));
  return groups;
}

torch::Tensor Stack(const std::vector<std::vector<int32_t>>& rows, const std::vector<int64_t>& idx,
                    int64_t from, int64_t n, torch::Device device) {
  const auto T = static_cast<int64_t>(rows[static_cast<size_t>(idx[0])].size());
  std::vector<int32_t> flat;
  flat.reserve(static_cast<size_t>(n * T));
  for (int64_t i = from; i < from + n; ++i) {
    const auto& r = rows[static_cast<size_t>(idx[static_cast<size_t>(i)])];
    flat.insert(flat.end(), r.begin(), r.end());
  }
  return TokensTensor(flat, n, T, device);
}

// Log-probabilities of every position of `rows`, flattened to [tokens, V].
torch::Tensor FlatLogProbs(const Model& model, const std::vector<std::vector<int32_t>>& rows) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (const auto& [len, idx] : ByLength(rows)) {
    for (int64_t b = 0; b < static_cast<int64_t>(idx.size()); b += 16) {
      const int64_t n = std::min<int64_t>(16, static_cast<int64_t>(idx.size()) - b);
      const auto logits = model.Forward(Stack(rows, idx, b, n, model.device()));
      out.push_back(torch::log_softmax(logits, -1).reshape({-1, logits.size(-1)}).to(torch::kCPU));
    }
  }
  return torch::cat(out);
}

void CheckIds(const std::vector<std::vector<int32_t>>& rows, const Model& model,
              const std::string& what) {
  const int64_t V = model.config().vocab_size, ctx = model.config().max_position_embeddings;
  for (const auto& r : rows) {
    for (const int32_t id : r)
      if (id < 0 || id >= V)
        throw std::runtime_error(fmt::format(
            "{}: token id {} is outside the model's vocab of {} (a tokenizer for another model?)",
            what, id, V));
    if (static_cast<int64_t>(r.size()) > ctx)
      throw std::runtime_error(
          fmt::format("{}: a row of {} tokens exceeds the model's context "
                      "of {} (lower data.max_len)",
                      what, r.size(), ctx));
  }
}

}  // namespace

YesNoScores ScoreYesNoText(const Model& model, const std::vector<std::vector<int32_t>>& prompts,
                           const std::vector<int32_t>& yes, const std::vector<int32_t>& no,
                           const ForwardOptions& opts, int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto R = static_cast<int64_t>(prompts.size());
  auto logratio = torch::zeros({R}, torch::kFloat32), pmass = torch::zeros({R}, torch::kFloat32);
  const auto yes_idx = torch::tensor(std::vector<int64_t>(yes.begin(), yes.end()), torch::kLong);
  const auto no_idx = torch::tensor(std::vector<int64_t>(no.begin(), no.end()), torch::kLong);
  for (const auto& [len, idx] : ByLength(prompts)) {
    ForwardOptions o = opts;
    o.logit_positions = torch::full({1}, static_cast<int64_t>(len) - 1, torch::kLong);
    for (int64_t b = 0; b < static_cast<int64_t>(idx.size()); b += batch) {
      const int64_t n = std::min<int64_t>(batch, static_cast<int64_t>(idx.size()) - b);
      const auto logp = torch::log_softmax(
          model.Forward(Stack(prompts, idx, b, n, model.device()), o).select(1, 0).to(torch::kCPU),
          -1);
      const auto ly = logp.index_select(1, yes_idx), ln = logp.index_select(1, no_idx);
      const auto rows = torch::tensor(std::vector<int64_t>(idx.begin() + b, idx.begin() + b + n));
      logratio.index_copy_(0, rows, (ly.logsumexp(1) - ln.logsumexp(1)).to(torch::kFloat32));
      pmass.index_copy_(0, rows, (ly.exp().sum(1) + ln.exp().sum(1)).to(torch::kFloat32));
    }
  }
  return {logratio, pmass};
}

SteerData TextSteerData(const Model& model, const Json& params,
                        const std::vector<InputArtifact>& inputs) {
  namespace TL = tokens_layout;
  const auto spec = data::TextDataSpec::FromParams(
      params.at("data"), params.at(data::kDataDirParam).get<std::string>());
  const auto tok = text::Tokenizer::FromDirectory(spec.tokenizer);
  std::vector<std::string> problems;
  const auto yes = data::AnswerIds(tok, spec.yes, "data.answers.yes", problems);
  const auto no = data::AnswerIds(tok, spec.no, "data.answers.no", problems);
  if (!problems.empty()) throw std::runtime_error(fmt::format("{}", fmt::join(problems, "; ")));

  const std::string cache = data::TokenCacheInput(inputs, params.at("data")).path;
  const auto rows_of = [](const data::TokenSplit& s) {
    std::vector<std::vector<int32_t>> rows;
    for (int64_t r = 0; r < s.rows(); ++r) rows.push_back(s.Row(r));
    return rows;
  };
  const auto pairs_of = [&](const data::TokenSplit& s) {
    auto out = std::make_shared<std::vector<Tokenized>>();
    for (int64_t r = 0; r < s.rows(); ++r)
      out->push_back({s.Row(r), s.prompt_len.at(static_cast<size_t>(r))});
    CheckIds(rows_of(s), model, spec.train);
    return out;
  };
  const auto pos = pairs_of(data::ReadTokenSplit(cache, TL::kTrainPos));
  const auto neg = pairs_of(data::ReadTokenSplit(cache, TL::kTrainNeg));
  const auto eval = data::ReadTokenSplit(cache, TL::kEval);
  auto prompts = std::make_shared<std::vector<std::vector<int32_t>>>(rows_of(eval));
  CheckIds(*prompts, model, spec.eval);
  SteerData d;
  for (int64_t i = 0; i < eval.rows(); ++i) {
    d.row_idx.push_back(i);
    d.label.push_back(eval.label.at(static_cast<size_t>(i)));
  }
  auto neutral = std::make_shared<std::vector<std::vector<int32_t>>>(
      rows_of(data::ReadTokenSplit(cache, TL::kNeutral)));
  CheckIds(*neutral, model, spec.neutral);

  d.n_train = static_cast<int64_t>(pos->size());
  d.loss_pos = PairLoss(pos);
  d.loss_neg = PairLoss(neg);
  d.score = [prompts, yes, no](const Model& m) { return ScoreYesNoText(m, *prompts, yes, no); };
  d.neutral_logp = [neutral](const Model& m) { return FlatLogProbs(m, *neutral); };
  const std::vector<int64_t> lines = eval.line;
  d.write_eval_set = [prompts, lines, yes, no, digest = params["data"]["digest"]](H5Writer& out) {
    std::vector<int32_t> flat;
    std::vector<int64_t> offsets = {0};
    for (const auto& p : *prompts) {
      flat.insert(flat.end(), p.begin(), p.end());
      offsets.push_back(static_cast<int64_t>(flat.size()));
    }
    out.Write(lora_steer_layout::kEvalTokenIds, flat);
    out.Write(lora_steer_layout::kEvalTokenOffsets, offsets);
    out.Write(lora_steer_layout::kEvalLine, lines);
    out.Write(lora_steer_layout::kEvalYesIds, yes);
    out.Write(lora_steer_layout::kEvalNoIds, no);
    out.Attr("eval", "data_digest", digest.get<std::string>());
  };
  Json task = params.at("data");
  task.erase(data::kDataDirParam);
  d.task_json = task.dump();
  return d;
}

}  // namespace seedgrid::steer
