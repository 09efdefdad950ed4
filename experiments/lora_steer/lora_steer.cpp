#include "experiments/lora_steer/lora_steer.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/store.h"
#include "experiments/lora_steer/layout.h"
#include "experiments/lora_steer/runner.h"

namespace seedgrid {
namespace {

namespace L = lora_steer_layout;

namespace fs = std::filesystem;

constexpr int64_t kMaxDenseDw = 4 << 20;  // elements
constexpr double kLoraDefaultLr = 1e-4;   // train.lr = 0
constexpr double kIa3DefaultLr = 3e-3;

bool HasCheckpoint(const std::string& dir) {
  return fs::exists(fs::path(dir) / "config.json") &&
         (fs::exists(fs::path(dir) / "model.safetensors") ||
          fs::exists(fs::path(dir) / "model.safetensors.index.json"));
}

// Sums `t` over the gang (in place).
void AllReduceSum(Collective& c, torch::Tensor& t) {
  if (c.size() <= 1) return;
  if (t.is_cuda() && c.backend() != "nccl") {
    auto host = t.to(torch::kCPU).contiguous();
    c.AllReduce(host.data_ptr(), static_cast<size_t>(host.numel()), DType::kFloat32,
                ReduceOp::kSum);
    t.copy_(host);
  } else {
    c.AllReduce(t.data_ptr(), static_cast<size_t>(t.numel()), DType::kFloat32, ReduceOp::kSum);
  }
}

struct Settings {
  std::string adapter;
  LoraOptions lora;
  AdapterTargets targets;
  int64_t steps = 0, batch = 0, warmup = 0;
  double lr = 0, weight_decay = 0, grad_clip = 0;
  std::string schedule;
  int64_t n_train = 0, n_eval = 0, n_kl = 0;
  std::vector<double> alphas;
};

Settings ReadSettings(const Json& p) {
  Settings s;
  s.adapter = p.at("adapter").get<std::string>();
  const Json& lora = p.at("lora");
  s.lora.rank = lora.at("rank").get<int64_t>();
  s.lora.alpha = lora.at("alpha").get<double>();
  s.lora.dropout = lora.at("dropout").get<double>();
  s.lora.init = lora.at("init").get<std::string>();
  const Json& targets = p.at("targets");
  for (const auto& m : targets.at("modules")) {
    const auto kind = ParseModuleKind(m.get<std::string>());
    if (!kind) throw std::runtime_error("targets.modules: unknown module " + m.dump());
    s.targets.modules.push_back(*kind);
  }
  if (s.targets.modules.empty()) {
    // PEFT defaults: every projection for LoRA; k, v, down for IA3.
    if (s.adapter == "ia3")
      s.targets.modules = {ModuleKind::kK, ModuleKind::kV, ModuleKind::kDown};
    else
      s.targets.modules.assign(std::begin(kAllModuleKinds), std::end(kAllModuleKinds));
  }
  s.targets.layer_lo = targets.at("layers").at(0).get<double>();
  s.targets.layer_hi = targets.at("layers").at(1).get<double>();
  const Json& train = p.at("train");
  s.steps = train.at("steps").get<int64_t>();
  s.batch = train.at("batch").get<int64_t>();
  s.warmup = train.at("warmup").get<int64_t>();
  s.lr = train.at("lr").get<double>();
  if (s.lr == 0.0) s.lr = s.adapter == "ia3" ? kIa3DefaultLr : kLoraDefaultLr;
  s.weight_decay = train.at("weight_decay").get<double>();
  s.grad_clip = train.at("grad_clip").get<double>();
  s.schedule = train.at("schedule").get<std::string>();
  const Json& data = p.at("data");
  s.n_train = data.at("n_train").get<int64_t>();
  s.n_eval = data.at("n_eval").get<int64_t>();
  s.n_kl = data.at("n_kl").get<int64_t>();
  for (const auto& a : p.at("eval").at("alphas")) s.alphas.push_back(a.get<double>());
  return s;
}

std::unique_ptr<TrainableAdapter> MakeAdapter(const Model& model, const Settings& s,
                                              uint64_t seed) {
  if (s.adapter == "lora") return std::make_unique<LoraAdapter>(model, s.lora, s.targets, seed);
  if (s.adapter == "ia3") return std::make_unique<Ia3Adapter>(model, s.targets);
  throw std::runtime_error("adapter: '" + s.adapter + "' is not lora or ia3");
}

struct Trained {
  std::unique_ptr<TrainableAdapter> adapter;
  std::vector<float> losses;
};

// Trains one adapter on steering rows answered as `persona` answers. Row order: a permutation of
// [0, n_train) per epoch drawn from `seed`, identical for θ+ and θ− and on every rank; rank r of
// k takes rows [r·b/k, (r+1)·b/k) of each global batch of b.
Trained TrainAdapter(const Model& model, const synth::TaskSpec& task, const Settings& s,
                     synth::Persona persona, uint64_t seed, Collective* gang,
                     const std::function<void(int64_t)>& progress) {
  const int ranks = gang ? gang->size() : 1;
  const int rank = gang ? gang->rank() : 0;
  if (s.batch % ranks != 0)
    throw std::runtime_error(fmt::format(
        "lora_steer: train.batch {} is not divisible by the gang's {} ranks", s.batch, ranks));
  const int64_t local = s.batch / ranks;
  const auto rows = synth::MakeSteerRows(task, synth::Split::kSteerTrain, 0, s.n_train, persona);
  const auto all_tokens = TokensTensor(rows.tokens, rows.rows, rows.seq_len, torch::kCPU);
  const auto all_answers =
      torch::tensor(std::vector<int64_t>(rows.answer.begin(), rows.answer.end()), torch::kLong);

  Trained t;
  torch::manual_seed(seed);  // dropout
  t.adapter = MakeAdapter(model, s, seed);
  if (ranks > 1) t.adapter->set_batch_slice(rank, ranks);  // dropout masks of the global batch
  t.adapter->params().EnableGrad();
  t.adapter->set_training(true);
  FlatAdamW::Options adam;
  adam.lr = s.lr;
  adam.weight_decay = s.weight_decay;
  FlatAdamW opt(t.adapter->params(), adam);

  std::mt19937_64 rng(seed ^ 0x5eed5eedull);
  std::vector<int64_t> order(static_cast<size_t>(s.n_train));
  size_t cursor = order.size();
  ForwardOptions opts;
  opts.adapter = t.adapter.get();
  opts.logit_positions = torch::full({1}, task.answer_pos() - 1, torch::kLong);
  auto loss_buf =
      torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(model.device()));
  for (int64_t step = 0; step < s.steps; ++step) {
    std::vector<int64_t> batch;
    while (static_cast<int64_t>(batch.size()) < s.batch) {
      if (cursor == order.size()) {
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        cursor = 0;
      }
      batch.push_back(order[cursor++]);
    }
    const auto idx = torch::tensor(
        std::vector<int64_t>(batch.begin() + rank * local, batch.begin() + (rank + 1) * local),
        torch::kLong);
    const auto tokens = all_tokens.index_select(0, idx).to(model.device());
    const auto answers = all_answers.index_select(0, idx).to(model.device());
    const auto logits = model.Forward(tokens, opts).select(1, 0);  // [local, V]
    // Sum over local rows / global batch: the gang's summed gradients equal the ranks:1 mean.
    auto loss = torch::nn::functional::cross_entropy(
                    logits, answers,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
                static_cast<double>(s.batch);
    t.adapter->params().ZeroGrad();
    loss.backward();
    {
      torch::NoGradGuard no_grad;
      loss_buf.copy_(loss.detach().view({1}));
      if (gang) {
        auto grad = t.adapter->params().grad_flat();
        AllReduceSum(*gang, grad);
        AllReduceSum(*gang, loss_buf);
      }
    }
    ClipGradNorm(t.adapter->params(), s.grad_clip);
    opt.Step(ScheduledLr(s.schedule, s.lr, step, s.steps, s.warmup));
    const float value = loss_buf.item<float>();
    if (!std::isfinite(value))
      throw std::runtime_error(
          fmt::format("lora_steer: loss is {} at step {} (lower train.lr?)", value, step));
    t.losses.push_back(value);
    progress(step + 1);
  }
  t.adapter->set_training(false);
  return t;
}

double TailMean(const std::vector<float>& v) {
  const size_t tail = std::max<size_t>(1, v.size() / 10);
  return std::accumulate(v.end() - static_cast<std::ptrdiff_t>(tail), v.end(), 0.0) /
         static_cast<double>(tail);
}

// Singular values of dW, descending, padded with zeros to min(out, in). LoRA's dW is
// s·[B+ | −B−]·[A+; A−], rank <= 2r: its values come from the small core of two QRs.
torch::Tensor SingularValues(const torch::Tensor& dw, const TrainableAdapter& pos,
                             const TrainableAdapter& neg, const std::string& name) {
  torch::NoGradGuard no_grad;
  const int64_t k = std::min(dw.size(0), dw.size(1));
  torch::Tensor s;
  const auto* lp = dynamic_cast<const LoraAdapter*>(&pos);
  const auto* ln = dynamic_cast<const LoraAdapter*>(&neg);
  if (lp && ln && 2 * lp->A(name).size(0) < k) {
    auto bcat = torch::cat({lp->B(name) * lp->scale(), ln->B(name) * (-ln->scale())}, 1);
    auto acat = torch::cat({lp->A(name), ln->A(name)}, 0);
    auto r1 = std::get<1>(torch::linalg_qr(bcat.to(torch::kCPU, torch::kFloat64)));
    auto r2 = std::get<1>(torch::linalg_qr(acat.t().to(torch::kCPU, torch::kFloat64)));
    s = torch::linalg_svdvals(r1.mm(r2.t())).to(torch::kFloat32);
    s = torch::cat({s, torch::zeros({k - s.size(0)}, torch::kFloat32)});
  } else {
    s = torch::linalg_svdvals(dw.to(torch::kCPU, torch::kFloat64)).to(torch::kFloat32);
  }
  return s.contiguous();
}

}  // namespace

YesNoScores ScoreYesNo(const Model& model, const synth::RowBatch& rows, const ForwardOptions& opts,
                       int64_t batch) {
  torch::NoGradGuard no_grad;
  const int64_t pos =
      rows.seq_len > 0
          ? std::distance(rows.row(0),
                          std::find(rows.row(0), rows.row(0) + rows.seq_len, synth::kQ))
          : 0;
  if (rows.rows > 0 && pos >= rows.seq_len)
    throw std::runtime_error("ScoreYesNo: rows have no Q token");
  ForwardOptions o = opts;
  o.logit_positions = torch::full({1}, pos, torch::kLong);
  const auto all = TokensTensor(rows.tokens, rows.rows, rows.seq_len, torch::kCPU);
  std::vector<torch::Tensor> lr, pm;
  for (int64_t b = 0; b < rows.rows; b += batch) {
    const int64_t n = std::min(batch, rows.rows - b);
    const auto logp = torch::log_softmax(
                          model.Forward(all.narrow(0, b, n).to(model.device()), o).select(1, 0), -1)
                          .to(torch::kCPU);
    const auto yes = logp.select(1, synth::kYes), no = logp.select(1, synth::kNo);
    lr.push_back(yes - no);
    pm.push_back(yes.exp() + no.exp());
  }
  if (lr.empty()) return {torch::zeros({0}), torch::zeros({0})};
  return {torch::cat(lr).contiguous(), torch::cat(pm).contiguous()};
}

torch::Tensor RowLogProbs(const Model& model, const synth::RowBatch& rows,
                          const ForwardOptions& opts, int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto all = TokensTensor(rows.tokens, rows.rows, rows.seq_len, torch::kCPU);
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < rows.rows; b += batch) {
    const int64_t n = std::min(batch, rows.rows - b);
    out.push_back(
        torch::log_softmax(model.Forward(all.narrow(0, b, n).to(model.device()), opts), -1)
            .to(torch::kCPU));
  }
  return torch::cat(out);
}

double MeanKl(const torch::Tensor& logp, const torch::Tensor& logq) {
  torch::NoGradGuard no_grad;
  return (logp.exp() * (logp - logq)).sum(-1).mean().item<double>();
}

std::string ResolveBaseCheckpoint(const ShardTaskView& task, const std::string& explicit_dir) {
  if (!explicit_dir.empty()) {
    if (!HasCheckpoint(explicit_dir))
      throw std::runtime_error(
          fmt::format("base checkpoint {}: needs config.json and model.safetensors (or an index)",
                      explicit_dir));
    return explicit_dir;
  }
  std::vector<std::string> looked;
  for (const auto& in : task.inputs) {
    if (in.key.kind() != "pretrain") continue;
    if (HasCheckpoint(in.artifact_dir)) return in.artifact_dir;
    looked.push_back(in.artifact_dir);
  }
  throw std::runtime_error(fmt::format(
      "no base checkpoint: params.base is empty and {} (give `needs: <a pretrain stage>` or base: "
      "DIR)",
      looked.empty() ? "no needed shard is a pretrain shard"
                     : fmt::format("the needed pretrain shards have no checkpoint in {}",
                                   fmt::join(looked, ", "))));
}

synth::TaskSpec TaskOfCheckpoint(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  const auto config = ModelConfig::FromHfFile(path);
  std::ifstream in(path);
  const Json j = Json::parse(in, nullptr, false);
  if (j.is_object() && j.contains("seedgrid_task"))
    return synth::TaskSpec::FromJson(j["seedgrid_task"]);
  synth::TaskSpec t;
  t.vocab_size = config.vocab_size;
  t.seq_len = std::min<int64_t>(config.max_position_embeddings, t.seq_len);
  t.Validate();
  return t;
}

std::map<std::string, torch::Tensor> ReadSteeringDelta(const std::string& h5_path,
                                                       const Model* base) {
  H5Reader r(h5_path);
  const auto targets_text = r.AttrString("/", "targets");
  if (!targets_text)
    throw std::runtime_error(h5_path + ": not a lora_steer shard file (no 'targets' attribute)");
  const Json targets = Json::parse(*targets_text);
  const std::string adapter = r.AttrString("/", "adapter").value_or("");
  const double scale = r.AttrDouble("/", "lora_scale").value_or(1.0);
  const auto read = [&](const std::string& ds) {
    Shape shape;
    auto v = r.Read<float>(ds, &shape);
    return torch::from_blob(v.data(), shape, torch::kFloat32).clone();
  };
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : targets) {
    const std::string name = t.get<std::string>();
    if (r.Has("dW/" + name)) {
      out[name] = read("dW/" + name);
    } else if (adapter == "lora") {
      const auto f = [&](const char* side, const char* which) {
        return read(fmt::format("adapter/{}/{}/{}", side, name, which));
      };
      out[name] = (f("pos", "B").mm(f("pos", "A")) - f("neg", "B").mm(f("neg", "A"))) * scale;
    } else if (adapter == "ia3") {
      if (base == nullptr)
        throw std::runtime_error(
            fmt::format("{}: dW of '{}' is not stored dense; rebuilding it from IA3 vectors needs "
                        "the base model",
                        h5_path, name));
      const auto dl =
          read(fmt::format("adapter/pos/{}/l", name)) - read(fmt::format("adapter/neg/{}/l", name));
      const auto w = base->Weight(name).detach().to(torch::kCPU);
      const bool down =
          ParseHfWeightName(name) && ParseHfWeightName(name)->second == ModuleKind::kDown;
      out[name] = down ? w * dl.view({1, -1}) : w * dl.view({-1, 1});
    } else {
      throw std::runtime_error(
          fmt::format("{}: no dW/{} and no adapter factors to rebuild it", h5_path, name));
    }
  }
  return out;
}

// The least-squares slope of y against x (0 when x does not vary).
static double LeastSquaresSlope(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
  }
  return sxx > 0 ? sxy / sxx : 0.0;
}

void RunLoraSteer(ShardContext& ctx) {
  const Json& p = ctx.params();
  at::set_num_threads(std::max(1, ctx.threads()));
  const torch::Device device(ctx.device());
  const Settings s = ReadSettings(p);
  const std::string base_dir = ResolveBaseCheckpoint(ctx.task(), p.at("base").get<std::string>());
  // model.dtype: the base's compute dtype; adapters, optimiser state and dW stay float32.
  Model model = Model::Load(base_dir, device,
                            ParseComputeDtype(p.at("model").at("dtype").get<std::string>()));
  const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
  if (task.vocab_size != model.config().vocab_size ||
      task.seq_len > model.config().max_position_embeddings)
    throw std::runtime_error(fmt::format(
        "base {}: task (vocab {}, seq_len {}) does not fit the model (vocab {}, context {})",
        base_dir, task.vocab_size, task.seq_len, model.config().vocab_size,
        model.config().max_position_embeddings));
  Collective* gang = ctx.collective();
  const auto seed = static_cast<uint64_t>(ctx.seed());
  const int64_t total = 2 * s.steps + static_cast<int64_t>(s.alphas.size());

  Trained pos = TrainAdapter(model, task, s, synth::Persona::kPos, seed, gang,
                             [&](int64_t step) { ctx.Progress(step, total); });
  Trained neg = TrainAdapter(model, task, s, synth::Persona::kNeg, seed, gang,
                             [&](int64_t step) { ctx.Progress(s.steps + step, total); });
  if (gang && gang->rank() != 0) return;  // rank 0 of the gang evaluates and publishes

  std::map<std::string, torch::Tensor> dw;
  {
    torch::NoGradGuard no_grad;
    auto dpos = pos.adapter->DeltaWeights();
    auto dneg = neg.adapter->DeltaWeights();
    for (auto& [name, d] : dpos) dw[name] = d - dneg.at(name);
  }

  // Evaluation: α·dW in place, restored bit-exactly when `edit` goes out of scope.
  const auto eval_rows =
      synth::MakeSteerRows(task, synth::Split::kSteerEval, 0, s.n_eval, synth::Persona::kPos);
  const auto neutral = synth::MakeInductionRows(task, synth::Split::kNeutral, 0, s.n_kl);
  const auto base_logp = RowLogProbs(model, neutral);
  const int64_t A = static_cast<int64_t>(s.alphas.size()), R = eval_rows.rows;
  std::vector<float> logratio, pmass;
  std::vector<double> kl, acc, signed_mean, pmass_mean;
  const auto label =
      torch::tensor(std::vector<float>(eval_rows.label.begin(), eval_rows.label.end()));
  {
    WeightEdit edit(model, dw);
    for (int64_t a = 0; a < A; ++a) {
      edit.SetAlpha(s.alphas[static_cast<size_t>(a)]);
      const auto scores = ScoreYesNo(model, eval_rows);
      logratio.insert(logratio.end(), scores.logratio.data_ptr<float>(),
                      scores.logratio.data_ptr<float>() + R);
      pmass.insert(pmass.end(), scores.pmass.data_ptr<float>(), scores.pmass.data_ptr<float>() + R);
      signed_mean.push_back((scores.logratio * label).mean().item<double>());
      pmass_mean.push_back(scores.pmass.mean().item<double>());
      acc.push_back((scores.logratio.sign() == label).to(torch::kFloat64).mean().item<double>());
      kl.push_back(MeanKl(base_logp, RowLogProbs(model, neutral)));
      ctx.Progress(2 * s.steps + a + 1, total);
    }
    edit.Restore();
  }

  H5Writer& out = ctx.out();
  out.Write(L::kTrainLossPos, pos.losses);
  out.Write(L::kTrainLossNeg, neg.losses);
  out.Write(L::kEvalAlphas, s.alphas);
  out.Write(L::kEvalLogratio, logratio.data(), Shape{A, R});
  out.Write(L::kEvalPmass, pmass.data(), Shape{A, R});
  out.Write(L::kEvalRowIdx, eval_rows.index);
  out.Write(L::kEvalLabel, std::vector<int64_t>(eval_rows.label.begin(), eval_rows.label.end()));
  out.Write(L::kEvalKl, kl);
  out.Write(L::kEvalAcc, acc);
  const std::string alpha_meaning =
      "steered weights = W + alpha * dW, dW = (merged theta+ - W) - (merged theta- - W); "
      "LoRA deltas already include lora_scale = lora.alpha / lora.rank";
  out.Attr("eval", "alpha_meaning", alpha_meaning);
  double fro2 = 0;
  Json names = Json::array();
  for (const auto& [name, d] : dw) {
    names.push_back(name);
    const auto host = d.detach().to(torch::kCPU).contiguous();
    fro2 += host.to(torch::kFloat64).pow(2).sum().item<double>();
    if (host.numel() <= kMaxDenseDw)
      out.Write("dW/" + name, host.data_ptr<float>(), Shape{host.size(0), host.size(1)});
    const auto sv = SingularValues(host, *pos.adapter, *neg.adapter, name);
    out.Write("dW_svals/" + name, sv.data_ptr<float>(), Shape{sv.size(0)});
  }
  pos.adapter->WriteFactors(out, "adapter/pos");
  neg.adapter->WriteFactors(out, "adapter/neg");
  out.Attr("/", "adapter", s.adapter);
  out.Attr("/", "lora_scale",
           s.adapter == "lora" ? s.lora.alpha / static_cast<double>(s.lora.rank) : 1.0);
  out.Attr("/", "alpha_meaning", alpha_meaning);
  out.Attr("/", "base_checkpoint", fs::absolute(base_dir).string());
  out.Attr("/", "model_dtype", std::string(ComputeDtypeName(model.dtype())));
  out.Attr("/", "task", task.ToJson().dump());
  out.Attr("/", "targets", names.dump());
  // Provenance of the training: a gang's size and its Collective's backend ("none": ranks 1).
  out.Attr("/", "gang_size", static_cast<int64_t>(gang ? gang->size() : 1));
  out.Attr("/", "collective_backend", gang ? gang->backend() : std::string("none"));

  const auto at_alpha = [&](double alpha) {
    const auto it = std::find(s.alphas.begin(), s.alphas.end(), alpha);
    return static_cast<size_t>(it - s.alphas.begin());
  };
  const size_t i0 = at_alpha(0.0), i1 = at_alpha(1.0);
  ctx.Metric(L::kFinalLossPos, TailMean(pos.losses));
  ctx.Metric(L::kFinalLossNeg, TailMean(neg.losses));
  ctx.Metric(L::kDwFro, std::sqrt(fro2));
  ctx.Metric(L::kSteerDelta, signed_mean[i1] - signed_mean[i0]);
  ctx.Metric(L::kSteerSlope, LeastSquaresSlope(s.alphas, signed_mean));
  ctx.Metric(L::kPmassMin, *std::min_element(pmass_mean.begin(), pmass_mean.end()));
  ctx.Metric(L::kKlAt1, kl[i1]);
  ctx.Metric(L::kAccAt0, acc[i0]);
  ctx.Metric(L::kAccAt1, acc[i1]);
}

void RegisterLoraSteerRunners(RunnerRegistry& runners) { runners.Add("lora_steer", RunLoraSteer); }

}  // namespace seedgrid
