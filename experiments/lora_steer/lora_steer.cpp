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

#include "core/live.h"
#include "core/store.h"
#include "experiments/lora_steer/layout.h"
#include "experiments/lora_steer/runner.h"
#include "experiments/lora_steer/steer_data.h"
#include "experiments/model/roles.h"

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

// Trains one adapter on the rows of `loss` (one persona's answers). Row order: a permutation of
// [0, n_train) per epoch drawn from `seed`, identical for θ+ and θ− and on every rank; rank r of
// k takes rows [r·b/k, (r+1)·b/k) of each global batch of b. Each step's loss also goes to the
// live curve `curve` (the name of its dataset in the shard file).
Trained TrainAdapter(const Model& model, const steer::RowsLoss& loss_of, int64_t n_train,
                     const Settings& s, uint64_t seed, Collective* gang, const char* curve,
                     const std::function<void(int64_t)>& progress) {
  const int ranks = gang ? gang->size() : 1;
  const int rank = gang ? gang->rank() : 0;
  if (s.batch % ranks != 0)
    throw std::runtime_error(fmt::format(
        "lora_steer: train.batch {} is not divisible by the gang's {} ranks", s.batch, ranks));
  const int64_t local = s.batch / ranks;

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
  std::vector<int64_t> order(static_cast<size_t>(n_train));
  size_t cursor = order.size();
  ForwardOptions opts;
  opts.adapter = t.adapter.get();
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
    const std::vector<int64_t> idx(batch.begin() + rank * local,
                                   batch.begin() + (rank + 1) * local);
    // Sum over local rows / global batch: the gang's summed gradients equal the ranks:1 mean.
    auto loss = loss_of(model, opts, idx) / static_cast<double>(s.batch);
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
    // A live curve (core/live.h), from one rank: the loss is the gang's, the same on each.
    if (rank == 0) LivePoint(curve, step, value);
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

// Singular values of the checkpoint tensor dW, descending, padded with zeros to min(out, in).
// `roles` are the role weights it holds in row order; those absent from `role_dw` are zero
// blocks. A transposed or row-permuted layout has the same values, so LoRA's dW, whose block
// rows are s·B_i·A_i = [s·B+_i | −s·B−_i]·[A+_i; A−_i], is blockdiag(B)·stack(A) of rank
// <= 2r·roles: its values come from the small core of two QRs.
torch::Tensor SingularValues(const torch::Tensor& dw, const Trained& pos, const Trained& neg,
                             const std::vector<std::string>& roles,
                             const std::map<std::string, torch::Tensor>& role_dw) {
  torch::NoGradGuard no_grad;
  const int64_t k = std::min(dw.size(0), dw.size(1));
  torch::Tensor s;
  const auto* lp = dynamic_cast<const LoraAdapter*>(pos.adapter.get());
  const auto* ln = dynamic_cast<const LoraAdapter*>(neg.adapter.get());
  std::vector<torch::Tensor> bs, as;
  int64_t rank = 0;
  for (const auto& role : roles) {
    if (lp == nullptr || ln == nullptr) break;
    const auto it = role_dw.find(role);
    if (it == role_dw.end()) continue;
    rank += lp->A(role).size(0) + ln->A(role).size(0);
    bs.push_back(torch::cat({lp->B(role) * lp->scale(), ln->B(role) * (-ln->scale())}, 1));
    as.push_back(torch::cat({lp->A(role), ln->A(role)}, 0));
  }
  if (!as.empty() && rank < k) {
    // Untargeted blocks add zero rows, which change no singular value: left out.
    auto bcat = bs.size() == 1 ? bs[0] : torch::block_diag(bs);
    auto acat = torch::cat(as, 0);
    auto r1 = std::get<1>(torch::linalg_qr(bcat.to(torch::kCPU, torch::kFloat64)));
    auto r2 = std::get<1>(torch::linalg_qr(acat.t().to(torch::kCPU, torch::kFloat64)));
    s = torch::linalg_svdvals(r1.mm(r2.t())).to(torch::kFloat32);
    s = torch::cat({s, torch::zeros({k - s.size(0)}, torch::kFloat32)});
  } else {
    s = torch::linalg_svdvals(dw.to(torch::kCPU, torch::kFloat64)).to(torch::kFloat32);
  }
  return s.contiguous();
}

// The synthetic task's rows (research/spd_ws.md §5): loss on the answer token only.
steer::RowsLoss SyntheticLoss(const synth::TaskSpec& task, const Settings& s,
                              synth::Persona persona) {
  const auto rows = synth::MakeSteerRows(task, synth::Split::kSteerTrain, 0, s.n_train, persona);
  const auto all_tokens = TokensTensor(rows.tokens, rows.rows, rows.seq_len, torch::kCPU);
  const auto all_answers =
      torch::tensor(std::vector<int64_t>(rows.answer.begin(), rows.answer.end()), torch::kLong);
  const auto position = torch::full({1}, task.answer_pos() - 1, torch::kLong);
  return [=](const Model& model, const ForwardOptions& opts, const std::vector<int64_t>& rows_idx) {
    const auto idx = torch::tensor(rows_idx, torch::kLong);
    ForwardOptions o = opts;
    o.logit_positions = position;
    const auto tokens = all_tokens.index_select(0, idx).to(model.device());
    const auto answers = all_answers.index_select(0, idx).to(model.device());
    const auto logits = model.Forward(tokens, o).select(1, 0);  // [local, V]
    return torch::nn::functional::cross_entropy(
        logits, answers, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  };
}

steer::SteerData SyntheticSteerData(const Model& model, const std::string& base_dir,
                                    const Settings& s) {
  const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
  if (task.vocab_size != model.config().vocab_size ||
      task.seq_len > model.config().max_position_embeddings)
    throw std::runtime_error(fmt::format(
        "base {}: task (vocab {}, seq_len {}) does not fit the model (vocab {}, context {})",
        base_dir, task.vocab_size, task.seq_len, model.config().vocab_size,
        model.config().max_position_embeddings));
  steer::SteerData d;
  d.n_train = s.n_train;
  d.loss_pos = SyntheticLoss(task, s, synth::Persona::kPos);
  d.loss_neg = SyntheticLoss(task, s, synth::Persona::kNeg);
  const auto eval_rows = std::make_shared<synth::RowBatch>(
      synth::MakeSteerRows(task, synth::Split::kSteerEval, 0, s.n_eval, synth::Persona::kPos));
  const auto neutral = std::make_shared<synth::RowBatch>(
      synth::MakeInductionRows(task, synth::Split::kNeutral, 0, s.n_kl));
  d.score = [eval_rows](const Model& m) { return ScoreYesNo(m, *eval_rows); };
  d.neutral_logp = [neutral](const Model& m) { return RowLogProbs(m, *neutral); };
  d.row_idx = eval_rows->index;
  d.label.assign(eval_rows->label.begin(), eval_rows->label.end());
  // The rows are a function of (task, split, index); their tokens are written all the same so
  // that another stack can recompute the scores from the shard file alone.
  d.write_eval_set = [eval_rows](H5Writer& out) {
    out.Write(lora_steer_layout::kEvalTokens, eval_rows->tokens.data(),
              Shape{eval_rows->rows, eval_rows->seq_len});
  };
  d.task_json = task.ToJson().dump();
  return d;
}

}  // namespace

namespace {

// Logits [n, V] of rows [b, b+n), each at its query position: one forward per distinct
// position over the rows that have it, cut after it (causal attention: the padding after a row's
// position never reaches it, so the cut changes nothing). Each group keeps the rows' order, so
// a batch of equal blocks (ablation's cell-major copies of the same rows) stays one of equal
// blocks.
torch::Tensor LogitsAtRows(const Model& model, const torch::Tensor& tokens,
                           const std::vector<int64_t>& position, int64_t b,
                           const ForwardOptions& opts) {
  std::map<int64_t, std::vector<int64_t>> rows_at;
  for (int64_t i = 0; i < tokens.size(0); ++i)
    rows_at[position[static_cast<size_t>(b + i)]].push_back(i);
  torch::Tensor out;
  for (const auto& [p, rows] : rows_at) {
    const auto idx = torch::tensor(rows, torch::kLong).to(tokens.device());
    ForwardOptions o = opts;
    o.logit_positions = torch::full({1}, p, torch::kLong);
    const auto logits =
        model.Forward(tokens.index_select(0, idx).narrow(1, 0, p + 1), o).select(1, 0);
    if (!out.defined()) out = torch::empty({tokens.size(0), logits.size(1)}, logits.options());
    out.index_copy_(0, idx, logits);
  }
  return out;
}

}  // namespace

YesNoScores ScoreYesNo(const Model& model, const synth::RowBatch& rows, const ForwardOptions& opts,
                       int64_t batch, const YesNoQuery* query) {
  torch::NoGradGuard no_grad;
  const int64_t pos =
      rows.seq_len > 0
          ? std::distance(rows.row(0),
                          std::find(rows.row(0), rows.row(0) + rows.seq_len, synth::kQ))
          : 0;
  if (!query && rows.rows > 0 && pos >= rows.seq_len)
    throw std::runtime_error("ScoreYesNo: rows have no Q token");
  ForwardOptions o = opts;
  o.logit_positions = torch::full({1}, pos, torch::kLong);
  const auto all = TokensTensor(rows.tokens, rows.rows, rows.seq_len, torch::kCPU);
  const auto ids = [](const std::vector<int32_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong);
  };
  const auto yes = query ? ids(query->yes) : torch::full({1}, synth::kYes, torch::kLong);
  const auto no = query ? ids(query->no) : torch::full({1}, synth::kNo, torch::kLong);
  std::vector<torch::Tensor> lr, pm;
  for (int64_t b = 0; b < rows.rows; b += batch) {
    const int64_t n = std::min(batch, rows.rows - b);
    const auto tokens = all.narrow(0, b, n).to(model.device());
    const auto logits = query ? LogitsAtRows(model, tokens, query->position, b, opts)
                              : model.Forward(tokens, o).select(1, 0);
    const auto logp = torch::log_softmax(logits, -1).to(torch::kCPU);
    const auto ly = logp.index_select(1, yes), ln = logp.index_select(1, no);
    lr.push_back(ly.logsumexp(1) - ln.logsumexp(1));
    pm.push_back(ly.exp().sum(1) + ln.exp().sum(1));
  }
  if (lr.empty()) return {torch::zeros({0}), torch::zeros({0})};
  return {torch::cat(lr).contiguous(), torch::cat(pm).contiguous()};
}

std::optional<std::pair<synth::RowBatch, YesNoQuery>> ReadTextEvalSet(const std::string& h5_path) {
  H5Reader r(h5_path);
  if (!r.Has(L::kEvalTokenIds)) return std::nullopt;
  const auto ids = r.Read<int32_t>(L::kEvalTokenIds);
  const auto off = r.Read<int64_t>(L::kEvalTokenOffsets);
  const auto label = r.Read<int64_t>(L::kEvalLabel);
  synth::RowBatch rows;
  YesNoQuery q;
  rows.rows = static_cast<int64_t>(off.size()) - 1;
  for (int64_t i = 0; i < rows.rows; ++i)
    rows.seq_len =
        std::max(rows.seq_len, off[static_cast<size_t>(i + 1)] - off[static_cast<size_t>(i)]);
  rows.tokens.assign(static_cast<size_t>(rows.rows * rows.seq_len), 0);  // right-padded
  for (int64_t i = 0; i < rows.rows; ++i) {
    const auto b = static_cast<size_t>(off[static_cast<size_t>(i)]),
               e = static_cast<size_t>(off[static_cast<size_t>(i + 1)]);
    std::copy(ids.begin() + b, ids.begin() + e, rows.tokens.begin() + i * rows.seq_len);
    q.position.push_back(static_cast<int64_t>(e - b) - 1);
  }
  rows.index = r.Read<int64_t>(L::kEvalRowIdx);
  rows.label.assign(label.begin(), label.end());
  q.yes = r.Read<int32_t>(L::kEvalYesIds);
  q.no = r.Read<int32_t>(L::kEvalNoIds);
  return std::make_pair(std::move(rows), std::move(q));
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

namespace {

// The config the dW names of a shard file refer to: the base model's, else the config.json of
// the file's base_checkpoint.
ModelConfig ConfigOfSteerFile(H5Reader& r, const std::string& h5_path, const Model* base) {
  if (base != nullptr) return base->config();
  const auto dir = r.AttrString("/", "base_checkpoint");
  if (!dir)
    throw std::runtime_error(h5_path + ": no base_checkpoint attribute to map dW names to roles");
  return ModelConfig::FromHfFile((fs::path(*dir) / "config.json").string());
}

}  // namespace

std::map<std::string, torch::Tensor> ReadSteeringDelta(const std::string& h5_path,
                                                       const Model* base) {
  H5Reader r(h5_path);
  const auto targets_text = r.AttrString("/", "targets");
  if (!targets_text)
    throw std::runtime_error(h5_path + ": not a lora_steer shard file (no 'targets' attribute)");
  const Json targets = Json::parse(*targets_text);
  // Files before roles (no target_roles) named dW by role already.
  const Json roles = Json::parse(r.AttrString("/", "target_roles").value_or(*targets_text));
  const std::string adapter = r.AttrString("/", "adapter").value_or("");
  const double scale = r.AttrDouble("/", "lora_scale").value_or(1.0);
  const auto read = [&](const std::string& ds) {
    Shape shape;
    auto v = r.Read<float>(ds, &shape);
    return torch::from_blob(v.data(), shape, torch::kFloat32).clone();
  };
  std::map<std::string, torch::Tensor> dense;
  bool all_dense = true, all_roles = true;
  for (const auto& t : targets) {
    const std::string name = t.get<std::string>();
    all_roles = all_roles && ParseHfWeightName(name).has_value();
    if (r.Has("dW/" + name))
      dense[name] = read("dW/" + name);
    else
      all_dense = false;
  }
  if (all_dense) return all_roles ? dense : RoleDeltas(ConfigOfSteerFile(r, h5_path, base), dense);
  // Rebuilt per role from the adapter factors (a dW too large to store dense).
  std::map<std::string, torch::Tensor> out;
  for (const auto& t : roles) {
    const std::string name = t.get<std::string>();
    if (adapter == "lora") {
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

namespace {

// The α sweep: α·dW in place, restored bit-exactly when `edit` goes out of scope.
struct Evaluation {
  std::vector<float> logratio, pmass;  // [A, R]
  std::vector<double> kl, acc, signed_mean, pmass_mean;
};

Evaluation EvaluateSteering(Model& model, const std::map<std::string, torch::Tensor>& dw,
                            const steer::SteerData& d, const std::vector<double>& alphas,
                            const std::function<void(int64_t)>& progress) {
  const auto base_logp = d.neutral_logp(model);
  const auto R = static_cast<int64_t>(d.label.size());
  const auto label = torch::tensor(std::vector<float>(d.label.begin(), d.label.end()));
  Evaluation e;
  WeightEdit edit(model, dw);
  for (size_t a = 0; a < alphas.size(); ++a) {
    edit.SetAlpha(alphas[a]);
    const auto scores = d.score(model);
    e.logratio.insert(e.logratio.end(), scores.logratio.data_ptr<float>(),
                      scores.logratio.data_ptr<float>() + R);
    e.pmass.insert(e.pmass.end(), scores.pmass.data_ptr<float>(),
                   scores.pmass.data_ptr<float>() + R);
    e.signed_mean.push_back((scores.logratio * label).mean().item<double>());
    e.pmass_mean.push_back(scores.pmass.mean().item<double>());
    e.acc.push_back((scores.logratio.sign() == label).to(torch::kFloat64).mean().item<double>());
    e.kl.push_back(MeanKl(base_logp, d.neutral_logp(model)));
    progress(static_cast<int64_t>(a) + 1);
  }
  edit.Restore();
  return e;
}

// dW under the checkpoint's own tensor names and layout (roles.h: GPT-2's c_attn is one fused
// [in, 3·out] delta, so that W_file + dW is the steered checkpoint tensor), its singular values
// and the adapter factors (by role); `names` gets the dW names, `roles` the role weight names.
// Returns ‖dW‖_F over all targets.
double WriteDelta(H5Writer& out, const ModelConfig& config,
                  const std::map<std::string, torch::Tensor>& dw, const Trained& pos,
                  const Trained& neg, Json& names, Json& roles) {
  double fro2 = 0;
  for (const auto& [name, d] : dw) roles.push_back(name);
  for (const auto& [name, d] : CheckpointDeltas(config, dw)) {
    names.push_back(name);
    const auto host = d.detach().to(torch::kCPU).contiguous();
    fro2 += host.to(torch::kFloat64).pow(2).sum().item<double>();
    if (host.numel() <= kMaxDenseDw)
      out.Write("dW/" + name, host.data_ptr<float>(), Shape{host.size(0), host.size(1)});
    const auto sv = SingularValues(host, pos, neg, RolesOfCheckpointTensor(config, name), dw);
    out.Write("dW_svals/" + name, sv.data_ptr<float>(), Shape{sv.size(0)});
  }
  pos.adapter->WriteFactors(out, "adapter/pos");
  neg.adapter->WriteFactors(out, "adapter/neg");
  return std::sqrt(fro2);
}

void WriteMetrics(ShardContext& ctx, const Settings& s, const Evaluation& e, const Trained& pos,
                  const Trained& neg, double dw_fro) {
  const auto at_alpha = [&](double alpha) {
    const auto it = std::find(s.alphas.begin(), s.alphas.end(), alpha);
    return static_cast<size_t>(it - s.alphas.begin());
  };
  const size_t i0 = at_alpha(0.0), i1 = at_alpha(1.0);
  ctx.Metric(L::kFinalLossPos, TailMean(pos.losses));
  ctx.Metric(L::kFinalLossNeg, TailMean(neg.losses));
  ctx.Metric(L::kDwFro, dw_fro);
  ctx.Metric(L::kSteerDelta, e.signed_mean[i1] - e.signed_mean[i0]);
  ctx.Metric(L::kSteerSlope, LeastSquaresSlope(s.alphas, e.signed_mean));
  ctx.Metric(L::kPmassMin, *std::min_element(e.pmass_mean.begin(), e.pmass_mean.end()));
  ctx.Metric(L::kKlAt1, e.kl[i1]);
  ctx.Metric(L::kAccAt0, e.acc[i0]);
  ctx.Metric(L::kAccAt1, e.acc[i1]);
}

}  // namespace

void RunLoraSteer(ShardContext& ctx) {
  const Json& p = ctx.params();
  at::set_num_threads(std::max(1, ctx.threads()));
  const torch::Device device(ctx.device());
  const Settings s = ReadSettings(p);
  const std::string base_dir = ResolveBaseCheckpoint(ctx.task(), p.at("base").get<std::string>());
  // model.dtype: the base's compute dtype; adapters, optimiser state and dW stay float32.
  Model model = Model::Load(base_dir, device,
                            ParseComputeDtype(p.at("model").at("dtype").get<std::string>()));
  const steer::SteerData data = p.at("data").at("source") == "text"
                                    ? steer::TextSteerData(model, p, ctx.task().inputs)
                                    : SyntheticSteerData(model, base_dir, s);
  Collective* gang = ctx.collective();
  const auto seed = static_cast<uint64_t>(ctx.seed());
  const int64_t total = 2 * s.steps + static_cast<int64_t>(s.alphas.size());

  Trained pos = TrainAdapter(model, data.loss_pos, data.n_train, s, seed, gang, L::kTrainLossPos,
                             [&](int64_t step) { ctx.Progress(step, total); });
  Trained neg = TrainAdapter(model, data.loss_neg, data.n_train, s, seed, gang, L::kTrainLossNeg,
                             [&](int64_t step) { ctx.Progress(s.steps + step, total); });
  if (gang && gang->rank() != 0) return;  // rank 0 of the gang evaluates and publishes

  std::map<std::string, torch::Tensor> dw;
  {
    torch::NoGradGuard no_grad;
    auto dpos = pos.adapter->DeltaWeights();
    auto dneg = neg.adapter->DeltaWeights();
    for (auto& [name, d] : dpos) dw[name] = d - dneg.at(name);
  }
  const Evaluation e = EvaluateSteering(model, dw, data, s.alphas,
                                        [&](int64_t a) { ctx.Progress(2 * s.steps + a, total); });

  const auto A = static_cast<int64_t>(s.alphas.size()), R = static_cast<int64_t>(data.label.size());
  H5Writer& out = ctx.out();
  out.Write(L::kTrainLossPos, pos.losses);
  out.Write(L::kTrainLossNeg, neg.losses);
  out.Write(L::kEvalAlphas, s.alphas);
  out.Write(L::kEvalLogratio, e.logratio.data(), Shape{A, R});
  out.Write(L::kEvalPmass, e.pmass.data(), Shape{A, R});
  out.Write(L::kEvalRowIdx, data.row_idx);
  out.Write(L::kEvalLabel, data.label);
  out.Write(L::kEvalKl, e.kl);
  out.Write(L::kEvalAcc, e.acc);
  data.write_eval_set(out);
  const std::string alpha_meaning =
      "steered weights = W + alpha * dW, dW = (merged theta+ - W) - (merged theta- - W); "
      "LoRA deltas already include lora_scale = lora.alpha / lora.rank";
  out.Attr("eval", "alpha_meaning", alpha_meaning);
  Json names = Json::array(), roles = Json::array();
  const double dw_fro = WriteDelta(out, model.config(), dw, pos, neg, names, roles);
  out.Attr("/", "adapter", s.adapter);
  out.Attr("/", "lora_scale",
           s.adapter == "lora" ? s.lora.alpha / static_cast<double>(s.lora.rank) : 1.0);
  out.Attr("/", "alpha_meaning", alpha_meaning);
  out.Attr("/", "base_checkpoint", fs::absolute(base_dir).string());
  out.Attr("/", "model_dtype", std::string(ComputeDtypeName(model.dtype())));
  out.Attr("/", "task", data.task_json);
  out.Attr("/", "targets", names.dump());
  out.Attr("/", "target_roles", roles.dump());
  // Provenance of the training: a gang's size and its Collective's backend ("none": ranks 1).
  out.Attr("/", "gang_size", static_cast<int64_t>(gang ? gang->size() : 1));
  out.Attr("/", "collective_backend", gang ? gang->backend() : std::string("none"));
  WriteMetrics(ctx, s, e, pos, neg, dw_fro);
}

void RegisterLoraSteerRunners(RunnerRegistry& runners) { runners.Add("lora_steer", RunLoraSteer); }

}  // namespace seedgrid
