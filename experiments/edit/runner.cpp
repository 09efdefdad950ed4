// The edit kind's runner (LibTorch): fire windows, rank-1 LoRA training, evaluation, the file.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/store.h"
#include "experiments/data/tokens.h"
#include "experiments/edit/edit.h"
#include "experiments/edit/fire.h"
#include "experiments/edit/layout.h"
#include "experiments/lora_steer/lora_steer.h"
#include "experiments/model/adapters.h"

namespace seedgrid {
namespace {

namespace L = edit_layout;
namespace fs = std::filesystem;

// A harvest file's reservoir windows, [C, K, W] int32 (docs/harvest.md).
constexpr char kReservoirTokens[] = "reservoir/tokens";
constexpr int64_t kEvalElements = 1 << 25;  // logits per evaluation chunk (rows · T · V)

struct Settings {
  ModuleKind module = ModuleKind::kDown;
  int64_t layer = 0;
  double lambda = 0;
  int64_t n_train = -1;  // -1: all
  int64_t n_eval = 0;
  int64_t steps = 0, batch = 0;
  double lr = 0, weight_decay = 0, init_std = 0;
};

Settings ReadSettings(const Json& p) {
  Settings s;
  const auto module = ParseModuleKind(p.at("weight").at("module").get<std::string>());
  if (!module) throw std::runtime_error("weight.module: " + p.at("weight").at("module").dump());
  s.module = *module;
  s.layer = p.at("weight").at("layer").get<int64_t>();
  s.lambda = p.at("lambda").get<double>();
  if (p.at("n_train").is_number_integer()) s.n_train = p.at("n_train").get<int64_t>();
  s.n_eval = p.at("n_eval").get<int64_t>();
  const Json& t = p.at("train");
  s.steps = t.at("steps").get<int64_t>();
  s.batch = t.at("batch").get<int64_t>();
  s.lr = t.at("lr").get<double>();
  s.weight_decay = t.at("weight_decay").get<double>();
  s.init_std = t.at("init_std").get<double>();
  return s;
}

int32_t CheckedToken(const Json& v, const char* key, int64_t vocab) {
  const auto t = v.get<int64_t>();
  if (t < 0 || t >= vocab)
    throw std::runtime_error(
        fmt::format("{}: token {} is outside the model's vocabulary [0, {})", key, t, vocab));
  return static_cast<int32_t>(t);
}

// The rows of a TokenSource (synthetic: `rows`; file: the first `rows`, 0 or more: all).
std::vector<int32_t> SourceRows(const TokenSource& src, int64_t rows, int64_t& n) {
  n = rows > 0 ? std::min(rows, src.size()) : src.size();
  return src.Rows(0, n);
}

// The reservoir windows of component fire.component of the needed harvest stage's reduce shard.
std::vector<edit::Window> HarvestWindows(const ShardContext& ctx, const Json& fire,
                                         int32_t target) {
  std::string path;
  for (const auto& in : ctx.task().inputs) {
    if (in.key.kind() != "harvest") continue;
    if (path.empty() || in.key.role() == ShardRole::kReduce) path = in.path;
  }
  if (path.empty())
    throw std::runtime_error(
        "fire.source harvest: no needed shard is a harvest shard (give "
        "`needs: <a harvest stage>`)");
  H5Reader r(path);
  Shape shape;
  const auto tokens = r.Read<int32_t>(kReservoirTokens, &shape);
  const int64_t c = fire.at("component").get<int64_t>();
  if (shape.size() != 3 || c >= shape[0])
    throw std::runtime_error(fmt::format("{}: {} has no component {} (shape [{}])", path,
                                         kReservoirTokens, c, fmt::join(shape, ", ")));
  const int64_t k = shape[1], w = shape[2];
  const std::vector<int32_t> slots(tokens.begin() + c * k * w, tokens.begin() + (c + 1) * k * w);
  return edit::WindowsFromReservoir(slots, k, w, target);
}

std::vector<edit::Window> FireWindows(const ShardContext& ctx, const synth::TaskSpec& task,
                                      int64_t vocab) {
  const Json& fire = ctx.params().at("fire");
  const auto source = fire.at("source").get<std::string>();
  const auto path = fire.at("path").get<std::string>();
  if (source == "jsonl") return edit::ReadJsonlWindows(path, vocab);
  const int32_t target = CheckedToken(fire.at("target"), "fire.target", vocab);
  if (source == "harvest") return HarvestWindows(ctx, fire, target);
  const int32_t after = CheckedToken(fire.at("after"), "fire.after", vocab);
  const TokenSource src =
      fire.at("tokens").get<std::string>() == "file"
          ? TokenSource::File(path, fire.at("dataset").get<std::string>(), vocab)
          : TokenSource::Synthetic(task, synth::Split::kSteerTrain,
                                   fire.at("rows_kind").get<std::string>());
  int64_t rows = 0;
  const auto tokens = SourceRows(src, fire.at("rows").get<int64_t>(), rows);
  return edit::WindowsAfterToken(tokens, rows, src.seq_len(), after, target);
}

// The generic batch for kl_global: [rows, T].
edit::Packed GlobalBatch(const Json& global, const synth::TaskSpec& task, int64_t vocab) {
  const TokenSource src =
      global.at("source").get<std::string>() == "file"
          ? TokenSource::File(global.at("path").get<std::string>(),
                              global.at("dataset").get<std::string>(), vocab)
          : TokenSource::Synthetic(task, synth::Split::kPretrainEval, "pretrain");
  edit::Packed p;
  p.tokens = SourceRows(src, global.at("rows").get<int64_t>(), p.rows);
  p.len = src.seq_len();
  p.role.assign(p.tokens.size(), static_cast<int8_t>(edit::Role::kSurrounding));
  p.target.assign(p.tokens.size(), -1);
  return p;
}

std::unique_ptr<LoraAdapter> MakeAdapter(const Model& model, const Settings& s, uint64_t seed) {
  const int64_t layers = model.config().num_hidden_layers;
  if (s.layer >= layers)
    throw std::runtime_error(fmt::format(
        "weight.layer: {} is not a layer of the base model (it has {})", s.layer, layers));
  LoraOptions o;
  o.rank = 1;
  o.alpha = 1.0;  // scale 1: the edit is B·A
  o.init = "gaussian";
  AdapterTargets t;
  t.modules = {s.module};
  // lo = hi selects layer floor(lo·L): the middle of the layer's interval is exact.
  t.layer_lo = t.layer_hi = (static_cast<double>(s.layer) + 0.5) / static_cast<double>(layers);
  auto adapter = std::make_unique<LoraAdapter>(model, o, t, seed);
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed ^ 0xed17ull);
  const auto a = adapter->A(HfWeightName(s.layer, s.module));
  a.copy_(torch::empty(a.sizes(), torch::kFloat32).normal_(0.0, 1.0, gen) * s.init_std);
  return adapter;
}

struct Tensors {
  torch::Tensor tokens, role, target;  // [B, T] on the model's device: int64, int8, int64
};
Tensors ToTensors(const edit::Packed& p, torch::Device device) {
  Tensors t;
  t.tokens = TokensTensor(p.tokens, p.rows, p.len, device);
  t.role = torch::from_blob(const_cast<int8_t*>(p.role.data()), {p.rows, p.len}, torch::kInt8)
               .clone()
               .to(device);
  t.target = torch::tensor(std::vector<int64_t>(p.target.begin(), p.target.end()), torch::kLong)
                 .view({p.rows, p.len})
                 .to(device);
  return t;
}

// Per position: KL(edited ‖ base) [B, T] and log P(target) under both [B, T] (0 where target is
// -1).
struct PositionTerms {
  torch::Tensor kl, logp_target, logp_target_base;
};
PositionTerms Terms(const Model& model, const LoraAdapter& adapter, const Tensors& t) {
  ForwardOptions o;
  o.adapter = &adapter;
  const auto logp = torch::log_softmax(model.Forward(t.tokens, o), -1);
  torch::Tensor base;
  {
    torch::NoGradGuard no_grad;
    base = torch::log_softmax(model.Forward(t.tokens), -1);
  }
  const auto idx = t.target.clamp_min(0).unsqueeze(-1);
  return {(logp.exp() * (logp - base)).sum(-1), logp.gather(-1, idx).squeeze(-1),
          base.gather(-1, idx).squeeze(-1)};
}

struct Trained {
  std::unique_ptr<LoraAdapter> adapter;
  std::vector<float> loss, ce, kl;
};

// AdamW on loss = mean CE at the batch's fire positions + λ · mean KL at its surrounding ones.
// Batches of min(batch, n) windows from a permutation of the training windows per epoch.
Trained Train(const Model& model, const Settings& s, const std::vector<edit::Window>& train,
              uint64_t seed, const std::function<void(int64_t)>& progress) {
  Trained out;
  out.adapter = MakeAdapter(model, s, seed);
  out.adapter->params().EnableGrad();
  FlatAdamW::Options adam;
  adam.lr = s.lr;
  adam.weight_decay = s.weight_decay;
  FlatAdamW opt(out.adapter->params(), adam);
  std::mt19937_64 rng(seed ^ 0x5eed5eedull);
  std::vector<size_t> order(train.size());
  size_t cursor = order.size();
  const size_t batch = std::min(static_cast<size_t>(s.batch), train.size());
  for (int64_t step = 0; step < s.steps; ++step) {
    std::vector<size_t> which;
    while (which.size() < batch) {
      if (cursor == order.size()) {
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      which.push_back(order[cursor++]);
    }
    const Tensors t = ToTensors(edit::Pack(train, which), model.device());
    const PositionTerms terms = Terms(model, *out.adapter, t);
    const auto fire = t.role == 1, surrounding = t.role == 0;
    const auto ce = -terms.logp_target.masked_select(fire).mean();
    const auto kl = surrounding.any().item<bool>() ? terms.kl.masked_select(surrounding).mean()
                                                   : torch::zeros_like(ce);
    const auto loss = ce + s.lambda * kl;
    out.adapter->params().ZeroGrad();
    loss.backward();
    opt.Step();
    const float value = loss.item<float>();
    if (!std::isfinite(value))
      throw std::runtime_error(
          fmt::format("edit: loss is {} at step {} (lower train.lr?)", value, step));
    out.loss.push_back(value);
    out.ce.push_back(ce.item<float>());
    out.kl.push_back(kl.item<float>());
    progress(step + 1);
  }
  return out;
}

// KL per position (NaN at padding) and P(target) edited/base per position of `p`, in chunks.
struct Evaluated {
  std::vector<float> kl, p, p_base;  // [rows · len]
};
Evaluated Evaluate(const Model& model, const LoraAdapter& adapter, const edit::Packed& p) {
  torch::NoGradGuard no_grad;
  const Tensors all = ToTensors(p, model.device());
  const int64_t chunk = std::clamp<int64_t>(
      kEvalElements / std::max<int64_t>(1, p.len * model.config().vocab_size), 1, 256);
  std::vector<torch::Tensor> kl, pt, pb;
  for (int64_t r = 0; r < p.rows; r += chunk) {
    const int64_t n = std::min(chunk, p.rows - r);
    const Tensors t{all.tokens.narrow(0, r, n), all.role.narrow(0, r, n),
                    all.target.narrow(0, r, n)};
    const PositionTerms terms = Terms(model, adapter, t);
    kl.push_back(terms.kl.masked_fill(t.role < 0, NAN).to(torch::kCPU, torch::kFloat32));
    pt.push_back(terms.logp_target.exp().to(torch::kCPU, torch::kFloat32));
    pb.push_back(terms.logp_target_base.exp().to(torch::kCPU, torch::kFloat32));
  }
  const auto vec = [](const std::vector<torch::Tensor>& parts) {
    const auto t = torch::cat(parts).contiguous();
    return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  };
  return {vec(kl), vec(pt), vec(pb)};
}

double Mean(const std::vector<float>& v, const std::vector<int8_t>& role, edit::Role want) {
  double sum = 0;
  size_t n = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (role[i] == static_cast<int8_t>(want)) sum += v[i], ++n;
  return n ? sum / static_cast<double>(n) : NAN;
}

double TailMean(const std::vector<float>& v) {
  const size_t tail = std::max<size_t>(1, v.size() / 10);
  return std::accumulate(v.end() - static_cast<std::ptrdiff_t>(tail), v.end(), 0.0) /
         static_cast<double>(tail);
}

// The held-out evaluation's datasets and metrics.
void WriteEval(ShardContext& ctx, const edit::Packed& eval, const Evaluated& e) {
  H5Writer& out = ctx.out();
  std::vector<int64_t> window, pos, target;
  std::vector<float> p, p_base;
  for (int64_t r = 0; r < eval.rows; ++r) {
    for (int64_t t = 0; t < eval.len; ++t) {
      const auto i = static_cast<size_t>(r * eval.len + t);
      if (eval.role[i] != static_cast<int8_t>(edit::Role::kFire)) continue;
      window.push_back(r);
      pos.push_back(t);
      target.push_back(eval.target[i]);
      p.push_back(e.p[i]);
      p_base.push_back(e.p_base[i]);
    }
  }
  const Shape shape{eval.rows, eval.len};
  out.Write(L::kEvalTokens, eval.tokens.data(), shape);
  const std::vector<int32_t> role(eval.role.begin(), eval.role.end());
  out.Write(L::kEvalRole, role.data(), shape);
  out.Write(L::kEvalKl, e.kl.data(), shape);
  out.Write(L::kEvalFireWindow, window);
  out.Write(L::kEvalFirePos, pos);
  out.Write(L::kEvalTarget, target);
  out.Write(L::kEvalPTarget, p);
  out.Write(L::kEvalPTargetBase, p_base);
  const auto mean = [](const std::vector<float>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  ctx.Metric(L::kPTarget, mean(p));
  ctx.Metric(L::kPTargetBase, mean(p_base));
  ctx.Metric(L::kKlSurrounding, Mean(e.kl, eval.role, edit::Role::kSurrounding));
}

}  // namespace

void RunEdit(ShardContext& ctx) {
  const Json& p = ctx.params();
  at::set_num_threads(std::max(1, ctx.threads()));
  const Settings s = ReadSettings(p);
  const std::string base_dir = ResolveBaseCheckpoint(ctx.task(), p.at("base").get<std::string>());
  // model.dtype: the base's compute dtype; the rank-1 factors, their gradients and AdamW's
  // moments stay float32 (LoraAdapter), as lora_steer's adapters do.
  const Model model = Model::Load(base_dir, torch::Device(ctx.device()),
                                  ParseComputeDtype(p.at("model").at("dtype").get<std::string>()));
  const int64_t vocab = model.config().vocab_size;
  const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
  edit::Windows windows = edit::SplitWindows(FireWindows(ctx, task, vocab), s.n_eval, s.n_train);
  const edit::Packed global = GlobalBatch(p.at("global"), task, vocab);
  const auto seed = static_cast<uint64_t>(ctx.seed());
  const int64_t total = s.steps + 1;

  const Trained t =
      Train(model, s, windows.train, seed, [&](int64_t step) { ctx.Progress(step, total); });
  std::vector<size_t> all(windows.eval.size());
  std::iota(all.begin(), all.end(), 0);
  const edit::Packed eval = edit::Pack(windows.eval, all);
  const Evaluated e = Evaluate(model, *t.adapter, eval);
  const Evaluated g = Evaluate(model, *t.adapter, global);
  ctx.Progress(total, total);

  H5Writer& out = ctx.out();
  out.Write(L::kTrainLoss, t.loss);
  out.Write(L::kTrainCe, t.ce);
  out.Write(L::kTrainKl, t.kl);
  WriteEval(ctx, eval, e);
  out.Write(L::kGlobalKl, g.kl.data(), Shape{global.rows, global.len});
  t.adapter->WriteFactors(out, L::kAdapter);
  const std::string weight = HfWeightName(s.layer, s.module);
  out.Attr("/", "base_checkpoint", fs::absolute(base_dir).string());
  out.Attr("/", "model_dtype", std::string(ComputeDtypeName(model.dtype())));
  out.Attr("/", "weight", weight);
  out.Attr("/", "fire_source", p.at("fire").at("source").get<std::string>());
  out.Attr("/", "lambda", s.lambda);
  out.Attr("/", "n_train", static_cast<int64_t>(windows.train.size()));
  out.Attr("/", "n_eval", static_cast<int64_t>(windows.eval.size()));
  ctx.Metric(L::kKlGlobal, Mean(g.kl, global.role, edit::Role::kSurrounding));
  ctx.Metric(L::kFinalLoss, TailMean(t.loss));
  torch::NoGradGuard no_grad;
  ctx.Metric(L::kDeltaFro, t.adapter->DeltaWeights().at(weight).norm().item<double>());
}

void RegisterEditRunners(RunnerRegistry& runners) { runners.Add("edit", RunEdit); }

}  // namespace seedgrid
