// target: heads — attention-head ablation of the base model.
#include <fmt/format.h>

#include <filesystem>
#include <vector>

#include "core/store.h"
#include "experiments/ablation/ablation.h"
#include "experiments/ablation/ablation_torch.h"
#include "experiments/ablation/layout.h"
#include "experiments/lora_steer/lora_steer.h"

namespace seedgrid {

HeadScores ScoreHeads(const Model& model, const synth::TaskSpec& task, const HeadOptions& o) {
  torch::NoGradGuard no_grad;
  const auto& c = model.config();
  CheckTaskFits(task, model, "(heads)");
  const int64_t L = c.num_hidden_layers, H = c.num_attention_heads, LH = L * H;
  const int64_t T = task.seq_len, m = task.induction_period(),
                batch = std::max<int64_t>(1, o.batch_rows);
  if (T < 3 || m < 2 || T - m - 1 < 1)
    throw std::runtime_error(fmt::format("ablation heads: seq_len {} is too short", T));
  const auto task_rows = synth::MakePretrainRows(task, synth::Split::kPretrainEval, 0, o.task_rows);
  const auto ind_rows = synth::MakeInductionRows(task, synth::Split::kNeutral, 0, o.induction_rows);
  const int64_t R = task_rows.rows, RI = ind_rows.rows;

  // Task positions t (logits at t predict token t+1): the answer of dilemma rows, the repeated
  // half of induction rows.
  auto mask = torch::zeros({R, T - 1}, torch::kFloat32);
  for (int64_t i = 0; i < R; ++i) {
    if (task_rows.dilemma[static_cast<size_t>(i)])
      mask[i][task.answer_pos() - 1] = 1.0f;
    else
      mask[i].narrow(0, m, T - 1 - m).fill_(1.0f);
  }
  const auto tokens = TokensTensor(task_rows.tokens, R, T, torch::kCPU);
  const auto ind_tokens = TokensTensor(ind_rows.tokens, RI, T, torch::kCPU);

  const int64_t task_batches = (R + batch - 1) / batch, ind_batches = (RI + batch - 1) / batch;
  const int64_t total = task_batches * (1 + LH) + ind_batches;
  int64_t done = 0;
  const auto tick = [&] {
    ++done;
    if (o.progress) o.progress(done, total);
  };

  std::vector<double> ce(LH, 0.0), kl(LH, 0.0), top1(LH, 0.0), prev(LH, 0.0), ind(LH, 0.0);
  double ce_base = 0, n_task = 0, n_pos = 0, n_prev = 0, n_ind = 0;
  const auto add_heads = [&](std::vector<double>& acc, int64_t l, const torch::Tensor& per_head) {
    const auto h = per_head.to(torch::kCPU, torch::kFloat64).contiguous();
    for (int64_t k = 0; k < H; ++k) acc[static_cast<size_t>(l * H + k)] += h[k].item<double>();
  };

  for (int64_t b0 = 0; b0 < R; b0 += batch) {
    const int64_t n = std::min(batch, R - b0);
    const auto tok = tokens.narrow(0, b0, n).to(model.device());
    const auto msk = mask.narrow(0, b0, n).to(model.device());
    const auto target = tok.narrow(1, 1, T - 1).unsqueeze(-1);
    const auto nll = [&](const torch::Tensor& lp) {
      return -(lp.narrow(1, 0, T - 1).gather(-1, target).squeeze(-1) * msk).sum().item<double>();
    };
    Capture cap;
    cap.Request(CapturePoint::kAttnPattern);
    ForwardOptions fo;
    fo.capture = &cap;
    const auto logp = torch::log_softmax(model.Forward(tok, fo), -1);
    for (int64_t l = 0; l < L; ++l)  // attention p -> p-1, summed over rows and positions
      add_heads(prev, l,
                cap.Get(CapturePoint::kAttnPattern, l)
                    .diagonal(-1, 2, 3)
                    .sum(std::vector<int64_t>{0, 2}));
    cap.Clear();
    n_prev += static_cast<double>(n * (T - 1));
    ce_base += nll(logp);
    n_task += msk.sum().item<double>();
    n_pos += static_cast<double>(n * T);
    const auto top = logp.argmax(-1);
    const auto p = logp.exp();
    tick();
    for (int64_t k = 0; k < LH; ++k) {
      ForwardOptions fa;
      fa.head_scale = torch::ones({L, H}, torch::kFloat32);
      fa.head_scale[k / H][k % H] = 0.0f;
      const auto logq = torch::log_softmax(model.Forward(tok, fa), -1);
      kl[static_cast<size_t>(k)] += (p * (logp - logq)).sum().item<double>();
      top1[static_cast<size_t>(k)] += logq.argmax(-1).ne(top).sum().item<double>();
      ce[static_cast<size_t>(k)] += nll(logq);
      tick();
    }
  }
  // Induction: query p (p >= m+1) to key p-m+1, i.e. diagonal -(m-1) from its third element.
  for (int64_t b0 = 0; b0 < RI; b0 += batch) {
    const int64_t n = std::min(batch, RI - b0);
    Capture cap;
    cap.Request(CapturePoint::kAttnPattern);
    ForwardOptions fo;
    fo.capture = &cap;
    model.Forward(ind_tokens.narrow(0, b0, n).to(model.device()), fo);
    for (int64_t l = 0; l < L; ++l)
      add_heads(ind, l,
                cap.Get(CapturePoint::kAttnPattern, l)
                    .diagonal(-(m - 1), 2, 3)
                    .narrow(-1, 2, T - m - 1)
                    .sum(std::vector<int64_t>{0, 2}));
    n_ind += static_cast<double>(n * (T - m - 1));
    tick();
  }

  HeadScores s;
  s.layers = L;
  s.heads = H;
  s.base_ce = ce_base / n_task;
  for (int64_t k = 0; k < LH; ++k) {
    const auto i = static_cast<size_t>(k);
    s.dce.push_back(ce[i] / n_task - s.base_ce);
    s.kl.push_back(kl[i] / n_pos);
    s.top1_changed.push_back(top1[i] / n_pos);
    s.prev_token.push_back(prev[i] / n_prev);
    s.induction.push_back(ind[i] / n_ind);
  }
  return s;
}

void RunHeadAblation(ShardContext& ctx) {
  const Json& p = ctx.params();
  const std::string base_dir = ResolveAblationBase(ctx.task(), p.at("base").get<std::string>());
  const Model model = Model::Load(base_dir, torch::Device(ctx.device()));
  const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
  HeadOptions o;
  o.task_rows = p.at("heads").at("task_rows").get<int64_t>();
  o.induction_rows = p.at("heads").at("induction_rows").get<int64_t>();
  o.batch_rows = p.at("batch").at("rows").get<int64_t>();
  o.progress = [&](int64_t done, int64_t total) { ctx.Progress(done, total); };
  const HeadScores s = ScoreHeads(model, task, o);

  H5Writer& out = ctx.out();
  const Shape shape{s.layers, s.heads};
  out.Write(ablation_layout::kHeadsDce, s.dce.data(), shape);
  out.Write(ablation_layout::kHeadsKl, s.kl.data(), shape);
  out.Write(ablation_layout::kHeadsTop1Changed, s.top1_changed.data(), shape);
  out.Write(ablation_layout::kHeadsPrevToken, s.prev_token.data(), shape);
  out.Write(ablation_layout::kHeadsInduction, s.induction.data(), shape);
  out.Attr(ablation_layout::kHeads, "ablation",
           std::string("head output (attention*V before o_proj) scaled by 0"));
  out.Attr(ablation_layout::kHeads, "base_ce", s.base_ce);
  out.Attr("/", "target", std::string("heads"));
  out.Attr("/", "base_checkpoint", std::filesystem::absolute(base_dir).string());

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
