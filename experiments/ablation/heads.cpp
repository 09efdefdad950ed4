// target: heads — attention-head ablation of the base model, on the synthetic task's rows or on
// windows of the user's text.
#include <fmt/format.h>

#include <filesystem>
#include <vector>

#include "core/store.h"
#include "experiments/ablation/ablation.h"
#include "experiments/ablation/ablation_torch.h"
#include "experiments/ablation/layout.h"
#include "experiments/data/text_data.h"
#include "experiments/data/tokens.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/tokens/cache.h"
#include "text/tokenizer.h"

namespace seedgrid {
namespace {

namespace L = ablation_layout;

// Sums of the per-head numbers over the batches, divided at the end.
struct HeadSums {
  std::vector<double> ce, kl, top1, prev, ind;
  double ce_base = 0, n_task = 0, n_pos = 0, n_prev = 0, n_ind = 0;
  explicit HeadSums(int64_t lh) {
    for (auto* v : {&ce, &kl, &top1, &prev, &ind}) v->assign(static_cast<size_t>(lh), 0.0);
  }
};

// acc[l·H + k] += per_head[k], summed in float64 (per_head is a float32 or wider [H] tensor).
void AddHeads(std::vector<double>& acc, int64_t l, const torch::Tensor& per_head) {
  const auto h = per_head.to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t H = h.size(0);
  for (int64_t k = 0; k < H; ++k) acc[static_cast<size_t>(l * H + k)] += h.data_ptr<double>()[k];
}

// The attention pattern of layer l summed over rows and the positions of `diagonal` (from its
// element `from`, `count` of them), in float32 whatever the compute dtype.
torch::Tensor PatternSum(const Capture& cap, int64_t l, int64_t diagonal, int64_t from,
                         int64_t count) {
  return cap.Get(CapturePoint::kAttnPattern, l)
      .diagonal(diagonal, 2, 3)
      .narrow(-1, from, count)
      .to(torch::kFloat32)
      .sum(std::vector<int64_t>{0, 2});
}

// One batch of task rows: the unablated forward (prev_token, base CE) and one forward per
// zeroed head (dce, kl, top1_changed).
void ScoreTaskBatch(const Model& model, const torch::Tensor& tok, const torch::Tensor& msk,
                    HeadSums& s, const std::function<void()>& tick) {
  const auto& c = model.config();
  const int64_t L = c.num_hidden_layers, H = c.num_attention_heads, T = tok.size(1);
  const int64_t n = tok.size(0);
  const auto target = tok.narrow(1, 1, T - 1).unsqueeze(-1);
  const auto nll = [&](const torch::Tensor& lp) {
    return -(lp.narrow(1, 0, T - 1).gather(-1, target).squeeze(-1) * msk).sum().item<double>();
  };
  Capture cap;
  cap.Request(CapturePoint::kAttnPattern);
  ForwardOptions fo;
  fo.capture = &cap;
  const auto logp = torch::log_softmax(model.Forward(tok, fo).to(torch::kFloat32), -1);
  for (int64_t l = 0; l < L; ++l)  // attention p -> p-1, summed over rows and positions
    AddHeads(s.prev, l, PatternSum(cap, l, -1, 0, T - 1));
  cap.Clear();
  s.n_prev += static_cast<double>(n * (T - 1));
  s.ce_base += nll(logp);
  s.n_task += msk.sum().item<double>();
  s.n_pos += static_cast<double>(n * T);
  const auto top = logp.argmax(-1);
  const auto p = logp.exp();
  tick();
  for (int64_t k = 0; k < L * H; ++k) {
    ForwardOptions fa;
    fa.head_scale = torch::ones({L, H}, torch::kFloat32);
    fa.head_scale[k / H][k % H] = 0.0f;
    const auto logq = torch::log_softmax(model.Forward(tok, fa).to(torch::kFloat32), -1);
    const auto i = static_cast<size_t>(k);
    s.kl[i] += (p * (logp - logq)).sum().item<double>();
    s.top1[i] += logq.argmax(-1).ne(top).sum().item<double>();
    s.ce[i] += nll(logq);
    tick();
  }
}

}  // namespace

HeadEvalSet SyntheticHeadRows(const synth::TaskSpec& task, const HeadOptions& o) {
  const int64_t T = task.seq_len, m = task.induction_period();
  if (T < 3 || m < 2 || T - m - 1 < 1)
    throw std::runtime_error(fmt::format("ablation heads: seq_len {} is too short", T));
  const auto task_rows = synth::MakePretrainRows(task, synth::Split::kPretrainEval, 0, o.task_rows);
  const auto ind_rows = synth::MakeInductionRows(task, synth::Split::kNeutral, 0, o.induction_rows);
  HeadEvalSet e;
  e.task = task_rows.tokens;
  e.rows = task_rows.rows;
  e.seq_len = T;
  // Counted: the answer of dilemma rows, the repeated half of induction rows.
  e.counted.assign(static_cast<size_t>(e.rows * (T - 1)), 0);
  for (int64_t i = 0; i < e.rows; ++i) {
    int32_t* row = e.counted.data() + i * (T - 1);
    if (task_rows.dilemma[static_cast<size_t>(i)])
      row[task.answer_pos() - 1] = 1;
    else
      std::fill(row + m, row + T - 1, 1);
  }
  e.induction = ind_rows.tokens;
  e.induction_rows = ind_rows.rows;
  e.induction_len = T;
  e.period = m;
  return e;
}

HeadEvalSet TextHeadRows(const std::vector<int32_t>& stream, int64_t window, const HeadOptions& o,
                         const std::string& origin) {
  const int64_t m = window / 2;
  if (m < 2) throw std::runtime_error(fmt::format("ablation heads: window {} < 4", window));
  const TokenSource windows = TokenSource::Windows(stream, window, origin);
  HeadEvalSet e;
  e.rows = std::min(o.task_rows, windows.size());
  e.seq_len = window;
  e.task = windows.Rows(0, e.rows);
  e.counted.assign(static_cast<size_t>(e.rows * (window - 1)), 1);
  e.induction_rows = std::min(o.induction_rows, windows.size());
  e.induction_len = 2 * m;
  e.period = m;
  const auto firsts = windows.Rows(0, e.induction_rows);
  for (int64_t i = 0; i < e.induction_rows; ++i)
    for (int rep = 0; rep < 2; ++rep)
      e.induction.insert(e.induction.end(), firsts.begin() + i * window,
                         firsts.begin() + i * window + m);
  return e;
}

HeadScores ScoreHeads(const Model& model, const synth::TaskSpec& task, const HeadOptions& o) {
  CheckTaskFits(task, model, "(heads)");
  return ScoreHeads(model, SyntheticHeadRows(task, o), o);
}

HeadScores ScoreHeads(const Model& model, const HeadEvalSet& e, const HeadOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& c = model.config();
  const int64_t L = c.num_hidden_layers, H = c.num_attention_heads, LH = L * H;
  const int64_t R = e.rows, RI = e.induction_rows, TI = e.induction_len, m = e.period;
  const int64_t batch = std::max<int64_t>(1, o.batch_rows);
  if (e.seq_len < 2 || m < 2 || TI - m - 1 < 1 || R < 1 || RI < 1)
    throw std::runtime_error(fmt::format(
        "ablation heads: {} task rows of {} tokens, {} induction rows of {} (period {}): too few",
        R, e.seq_len, RI, TI, m));
  const auto tokens = TokensTensor(e.task, R, e.seq_len, torch::kCPU);
  const auto mask = torch::tensor(e.counted, torch::kFloat32).view({R, e.seq_len - 1});
  const auto ind_tokens = TokensTensor(e.induction, RI, TI, torch::kCPU);

  const int64_t task_batches = (R + batch - 1) / batch, ind_batches = (RI + batch - 1) / batch;
  const int64_t total = task_batches * (1 + LH) + ind_batches;
  int64_t done = 0;
  const auto tick = [&] {
    ++done;
    if (o.progress) o.progress(done, total);
  };
  HeadSums s(LH);
  for (int64_t b0 = 0; b0 < R; b0 += batch) {
    const int64_t n = std::min(batch, R - b0);
    ScoreTaskBatch(model, tokens.narrow(0, b0, n).to(model.device()),
                   mask.narrow(0, b0, n).to(model.device()), s, tick);
  }
  // Induction: query p (p >= m+1) to key p-m+1, i.e. diagonal -(m-1) from its third element.
  for (int64_t b0 = 0; b0 < RI; b0 += batch) {
    const int64_t n = std::min(batch, RI - b0);
    Capture cap;
    cap.Request(CapturePoint::kAttnPattern);
    ForwardOptions fo;
    fo.capture = &cap;
    model.Forward(ind_tokens.narrow(0, b0, n).to(model.device()), fo);
    for (int64_t l = 0; l < L; ++l) AddHeads(s.ind, l, PatternSum(cap, l, -(m - 1), 2, TI - m - 1));
    s.n_ind += static_cast<double>(n * (TI - m - 1));
    tick();
  }

  HeadScores out;
  out.layers = L;
  out.heads = H;
  out.base_ce = s.ce_base / s.n_task;
  for (size_t i = 0; i < static_cast<size_t>(LH); ++i) {
    out.dce.push_back(s.ce[i] / s.n_task - out.base_ce);
    out.kl.push_back(s.kl[i] / s.n_pos);
    out.top1_changed.push_back(s.top1[i] / s.n_pos);
    out.prev_token.push_back(s.prev[i] / s.n_prev);
    out.induction.push_back(s.ind[i] / s.n_ind);
  }
  return out;
}

namespace {

// The corpus's token ids for data.source text: the token cache among the shard's `inputs` (the
// tokens shard the planner adds; data::CorpusTokens, exactly data::TokenizeCorpus of data.path's
// data.column with data.tokenizer's specials). `origin` names the corpus for errors. Throws when
// the tokenizer's ids do not fit the model.
std::vector<int32_t> HeadCorpusIds(const Json& p, const std::vector<ShardInput>& inputs,
                                   const Model& model, std::string& origin) {
  const Json& data = p.at("data");
  const std::filesystem::path dir = p.at(data::kDataDirParam).get<std::string>();
  origin = (dir / data.at("path").get<std::string>()).lexically_normal().string();
  const auto tok_dir = (dir / data.at("tokenizer").get<std::string>()).lexically_normal();
  const auto tok = text::Tokenizer::FromDirectory(tok_dir);
  const int64_t vocab = model.config().vocab_size;
  if (static_cast<int64_t>(tok.VocabSize()) > vocab)
    throw std::runtime_error(
        fmt::format("data.tokenizer: {} has {} tokens but the base model's vocabulary is {}",
                    tok_dir.string(), tok.VocabSize(), vocab));
  return data::CorpusTokens(inputs, data);
}

void WriteEvalSet(H5Writer& out, const HeadEvalSet& e) {
  out.Write(L::kHeadsEvalTokens, e.task.data(), Shape{e.rows, e.seq_len});
  out.Write(L::kHeadsEvalCounted, e.counted.data(), Shape{e.rows, e.seq_len - 1});
  out.Write(L::kHeadsEvalInduction, e.induction.data(), Shape{e.induction_rows, e.induction_len});
  out.Attr(L::kHeadsEvalInduction, "period", e.period);
}

}  // namespace

void RunHeadAblation(ShardContext& ctx) {
  const Json& p = ctx.params();
  const std::string base_dir = ResolveAblationBase(ctx.task(), p.at("base").get<std::string>());
  const Model model = Model::Load(base_dir, torch::Device(ctx.device()), AblationDtype(p));
  HeadOptions o;
  o.task_rows = p.at("heads").at("task_rows").get<int64_t>();
  o.induction_rows = p.at("heads").at("induction_rows").get<int64_t>();
  o.batch_rows = p.at("batch").at("rows").get<int64_t>();
  o.progress = [&](int64_t done, int64_t total) { ctx.Progress(done, total); };
  const bool text = p.at("data").at("source") == "text";
  HeadEvalSet rows;
  if (text) {
    std::string origin;
    const auto ids = HeadCorpusIds(p, ctx.task().inputs, model, origin);
    const int64_t window = p.at("data").at("window").get<int64_t>();
    if (window > model.config().max_position_embeddings)
      throw std::runtime_error(
          fmt::format("data.window: {} is longer than the base model's context {}", window,
                      model.config().max_position_embeddings));
    rows = TextHeadRows(ids, window, o, origin);
  } else {
    const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
    CheckTaskFits(task, model, base_dir);
    rows = SyntheticHeadRows(task, o);
  }
  const HeadScores s = ScoreHeads(model, rows, o);

  H5Writer& out = ctx.out();
  const Shape shape{s.layers, s.heads};
  out.Write(L::kHeadsDce, s.dce.data(), shape);
  out.Write(L::kHeadsKl, s.kl.data(), shape);
  out.Write(L::kHeadsTop1Changed, s.top1_changed.data(), shape);
  out.Write(L::kHeadsPrevToken, s.prev_token.data(), shape);
  out.Write(L::kHeadsInduction, s.induction.data(), shape);
  WriteEvalSet(out, rows);
  out.Attr(L::kHeads, "ablation",
           std::string("head output (attention*V before o_proj) scaled by 0"));
  out.Attr(L::kHeads, "base_ce", s.base_ce);
  out.Attr(L::kHeads, "data_source", std::string(text ? "text" : "synthetic"));
  if (text) out.Attr(L::kHeads, "data_digest", p.at("data").at("digest").get<std::string>());
  out.Attr("/", "target", std::string("heads"));
  out.Attr("/", "base_checkpoint", std::filesystem::absolute(base_dir).string());
  out.Attr("/", "model_dtype", std::string(ComputeDtypeName(model.dtype())));

  const auto max_of = [](const std::vector<double>& v) {
    return *std::max_element(v.begin(), v.end());
  };
  ctx.Metric("base_ce", s.base_ce);
  ctx.Metric("max_dce", max_of(s.dce));
  ctx.Metric("max_kl", max_of(s.kl));
  ctx.Metric("max_top1_changed", max_of(s.top1_changed));
  ctx.Metric("max_prev_token", max_of(s.prev_token));
  ctx.Metric("max_induction", max_of(s.induction));
}

}  // namespace seedgrid
