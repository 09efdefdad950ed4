#include "experiments/pretrain/pretrain.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "core/live.h"
#include "experiments/data/text_data.h"
#include "experiments/data/tokens.h"
#include "experiments/model/adapters.h"
#include "experiments/model/model.h"
#include "experiments/pretrain/layout.h"
#include "experiments/tokens/cache.h"

namespace seedgrid {
namespace {

// Task accuracy: argmax of the logits that predict ANS equals the persona's answer.
double PersonaAccuracy(const Model& model, const synth::TaskSpec& task, int64_t rows) {
  torch::NoGradGuard no_grad;
  const auto batch = synth::MakePersonaRows(task, synth::Split::kPretrainEval, 0, rows);
  const auto tokens = TokensTensor(batch.tokens, batch.rows, batch.seq_len, model.device());
  ForwardOptions opts;
  opts.logit_positions = torch::full({1}, task.answer_pos() - 1, torch::kLong);
  const auto pred = model.Forward(tokens, opts).select(1, 0).argmax(-1).to(torch::kCPU);
  const auto* p = pred.data_ptr<int64_t>();
  int64_t correct = 0;
  for (int64_t i = 0; i < batch.rows; ++i) correct += p[i] == batch.answer[static_cast<size_t>(i)];
  return static_cast<double>(correct) / static_cast<double>(batch.rows);
}

}  // namespace

namespace {

// The synthetic mix, an HDF5 token file, or a text corpus (its ids from the token cache among
// `inputs`) cut into windows of model.context.
TokenSource MakeSource(const Json& p, const ModelConfig& config, const synth::TaskSpec& task,
                       const std::vector<InputArtifact>& inputs) {
  const Json& data = p.at("data");
  const auto source = data.at("source").get<std::string>();
  if (source == "synthetic") return TokenSource::Synthetic(task, synth::Split::kPretrain);
  if (source == "file")
    return TokenSource::File(data.at("path").get<std::string>(),
                             data.at("dataset").get<std::string>(), config.vocab_size);
  const std::filesystem::path dir = p.at(data::kDataDirParam).get<std::string>();
  const auto path = (dir / data.at("path").get<std::string>()).lexically_normal().string();
  return TokenSource::Windows(data::CorpusTokens(inputs, data), config.max_position_embeddings,
                              path);
}

}  // namespace

void RunPretrain(ShardContext& ctx) {
  const Json& p = ctx.params();
  at::set_num_threads(std::max(1, ctx.threads()));
  const torch::Device device(ctx.device());
  const ModelConfig config = ModelConfig::FromParams(p.at("model"));
  const Json& data = p.at("data");
  const Json& train = p.at("train");
  const bool synthetic = data.at("source").get<std::string>() == "synthetic";

  synth::TaskSpec task;
  task.vocab_size = config.vocab_size;
  task.seq_len = config.max_position_embeddings;
  task.n_content = data.at("n_content").get<int64_t>();
  task.induction_frac = data.at("induction_frac").get<double>();
  task.none_bias = data.at("none_bias").get<double>();
  task.seed = data.at("seed").get<uint64_t>();
  const TokenSource source = MakeSource(p, config, task, ctx.task().inputs);
  if (source.seq_len() > config.max_position_embeddings)
    throw std::runtime_error(
        fmt::format("pretrain: data rows have {} tokens but model.context is {}", source.seq_len(),
                    config.max_position_embeddings));

  Model model(config, device);
  model.InitRandom(static_cast<uint64_t>(ctx.seed()), p.at("init").at("std").get<double>());
  model.params().EnableGrad();
  FlatAdamW::Options adam;
  adam.lr = train.at("lr").get<double>();
  adam.weight_decay = train.at("weight_decay").get<double>();
  FlatAdamW opt(model.params(), adam);

  const int64_t steps = train.at("steps").get<int64_t>();
  const int64_t batch = train.at("batch").get<int64_t>();
  const int64_t warmup = train.at("warmup").get<int64_t>();
  const auto schedule = train.at("schedule").get<std::string>();
  const double clip = train.at("grad_clip").get<double>();
  const bool predictable_only = synthetic && train.at("loss").get<std::string>() == "predictable";
  std::vector<float> losses;
  losses.reserve(static_cast<size_t>(steps));
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int32_t> rows;
    torch::Tensor mask;
    if (synthetic) {
      const auto b = synth::MakePretrainRows(task, synth::Split::kPretrain, step * batch, batch);
      rows = b.tokens;
      if (predictable_only)
        mask = torch::tensor(synth::PredictableTargets(task, b), torch::kUInt8)
                   .view({batch, task.seq_len - 1})
                   .to(device, torch::kBool);
    } else {  // cycle through the file
      rows.reserve(static_cast<size_t>(batch * source.seq_len()));
      for (int64_t i = 0; i < batch; ++i) {
        const auto r = source.Rows((step * batch + i) % source.size(), 1);
        rows.insert(rows.end(), r.begin(), r.end());
      }
    }
    const auto tokens = TokensTensor(rows, batch, source.seq_len(), device);
    auto loss = model.ForwardNextTokenLoss(tokens, {}, mask);
    model.params().ZeroGrad();
    loss.backward();
    ClipGradNorm(model.params(), clip);
    opt.Step(ScheduledLr(schedule, adam.lr, step, steps, warmup));
    const float value = loss.item<float>();
    if (!std::isfinite(value))
      throw std::runtime_error(
          fmt::format("pretrain: loss is {} at step {} (lower train.lr?)", value, step));
    losses.push_back(value);
    LivePoint(pretrain_layout::kTrainLoss, step, value);  // a live curve (core/live.h)
    ctx.Progress(step + 1, steps);
  }

  const size_t tail = std::max<size_t>(1, losses.size() / 10);
  const double final_loss =
      std::accumulate(losses.end() - static_cast<std::ptrdiff_t>(tail), losses.end(), 0.0) /
      static_cast<double>(tail);
  ctx.out().Write(pretrain_layout::kTrainLoss, losses);
  ctx.Metric(pretrain_layout::kFinalLoss, final_loss);
  Json extra = Json::object();
  if (synthetic) {
    const double acc = PersonaAccuracy(model, task, p.at("eval").at("rows").get<int64_t>());
    ctx.out().Write(pretrain_layout::kEvalAccuracy, std::vector<double>{acc});
    ctx.Metric(pretrain_layout::kTaskAccuracy, acc);
    extra["seedgrid_task"] = task.ToJson();
  }
  model.Save(ctx.artifact_dir(), extra);
}

void RegisterPretrainRunners(RunnerRegistry& runners) { runners.Add("pretrain", RunPretrain); }

}  // namespace seedgrid
