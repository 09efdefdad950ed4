#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "experiments/harvest/files.h"
#include "experiments/harvest/forward.h"
#include "experiments/harvest/harvest.h"
#include "experiments/harvest/text.h"
#include "experiments/lora_steer/lora_steer.h"
#include "text/tokenizer.h"

namespace seedgrid {
namespace harvest {
namespace {

int64_t PointWidth(CapturePoint p, const ModelConfig& c) {
  switch (p) {
    case CapturePoint::kResidPre:
    case CapturePoint::kResidMid:
    case CapturePoint::kResidPost: return c.hidden_size;
    case CapturePoint::kMlpPre:
    case CapturePoint::kMlpPost: return c.intermediate_size;
    case CapturePoint::kAttnZ: return c.q_dim();
    case CapturePoint::kAttnPattern: break;
  }
  throw std::runtime_error(
      fmt::format("components.point: {} is not a per-token capture point", ToString(p)));
}

// The captured point of every chosen layer as panels [N, width] read in place (float32 CPU
// tensors with unit column stride; anything else is converted once into `keep`).
std::vector<Panel> Panels(const Capture& cap, CapturePoint p, const std::vector<int64_t>& layers,
                          int64_t n, int64_t width, std::vector<torch::Tensor>& keep) {
  std::vector<Panel> panels;
  for (int64_t l : layers) {
    auto t = cap.Get(p, l).reshape({n, width});  // a view where the layout allows
    if (t.device() != torch::kCPU || t.scalar_type() != torch::kFloat32 || t.stride(1) != 1)
      t = t.to(torch::kCPU, torch::kFloat32).contiguous();
    keep.push_back(t);
    panels.push_back({t.data_ptr<float>(), width, n > 1 ? t.stride(0) : width});
  }
  return panels;
}

// GangReduce reduces host vectors; NCCL needs device memory. This wrapper copies every buffer
// to the shard's device around the wrapped call (the result comes back to the host buffer).
class DeviceStaged final : public Collective {
 public:
  DeviceStaged(Collective& inner, torch::Device device) : inner_(inner), device_(device) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string backend() const override { return inner_.backend(); }
  void AllReduce(void* data, size_t count, DType type, ReduceOp op) override {
    auto buf = ToDevice(data, count, type);
    inner_.AllReduce(buf.data_ptr(), count, type, op);
    ToHost(buf, data);
  }
  void Broadcast(void* data, size_t count, DType type, int root) override {
    auto buf = ToDevice(data, count, type);
    inner_.Broadcast(buf.data_ptr(), count, type, root);
    ToHost(buf, data);
  }
  void Gather(const void* in, void* out, size_t count, DType type, int root) override {
    const bool at_root = rank() == root;
    auto send = ToDevice(in, count, type);
    auto recv = torch::empty({at_root ? Bytes(count * static_cast<size_t>(size()), type) : 0},
                             torch::TensorOptions().dtype(torch::kUInt8).device(device_));
    inner_.Gather(send.data_ptr(), at_root ? recv.data_ptr() : nullptr, count, type, root);
    if (at_root) ToHost(recv, out);
  }
  void Barrier() override { inner_.Barrier(); }

 private:
  static int64_t Bytes(size_t count, DType type) {
    return static_cast<int64_t>(count * DTypeSize(type));
  }
  torch::Tensor ToDevice(const void* data, size_t count, DType type) const {
    return torch::from_blob(const_cast<void*>(data), {Bytes(count, type)}, torch::kUInt8)
        .to(device_);
  }
  static void ToHost(const torch::Tensor& buf, void* data) {
    torch::from_blob(data, {buf.numel()}, torch::kUInt8).copy_(buf);
  }

  Collective& inner_;
  torch::Device device_;
};

// The rows to harvest: the checkpoint's synthetic task, a token file, or a text corpus cut into
// windows (text.h; its ids from the token cache among `inputs`). `rows` 0 (file, text) becomes
// every row; more than the source has throws.
TokenSource MakeSource(const Json& p, const std::vector<ShardInput>& inputs,
                       const std::string& base_dir, const ModelConfig& mc, int64_t& rows) {
  const Json& data = p.at("data");
  const auto kind = data.at("source").get<std::string>();
  if (kind == "synthetic") {
    const synth::TaskSpec task = TaskOfCheckpoint(base_dir);
    if (task.vocab_size != mc.vocab_size)
      throw std::runtime_error(fmt::format("base {}: task vocab {} is not the model's {}", base_dir,
                                           task.vocab_size, mc.vocab_size));
    return TokenSource::Synthetic(task, synth::Split::kHarvest,
                                  data.at("rows_kind").get<std::string>());
  }
  std::string origin;
  const TokenSource s = [&] {
    if (kind == "file") {
      origin = data.at("path").get<std::string>();
      return TokenSource::File(origin, data.at("dataset").get<std::string>(), mc.vocab_size);
    }
    origin = CorpusPath(p);
    const std::vector<int32_t> stream = HarvestCorpusTokens(p, inputs);
    CheckCorpusVocab(stream, mc.vocab_size, p);
    const int64_t window = data.at("window").get<int64_t>();
    return TokenSource::Windows(stream, window > 0 ? window : mc.max_position_embeddings, origin);
  }();
  if (rows == 0) rows = s.size();
  if (rows > s.size())
    throw std::runtime_error(
        fmt::format("data.rows: {} rows asked, {} has {}", rows, origin, s.size()));
  return s;
}

// With a text source: the decoded reservoir examples and the eval set reference (text.h).
void WriteTextParts(H5Writer& out, const Accumulators& acc, const Json& p, bool finished) {
  if (!IsTextSource(p)) return;
  WriteTextExamples(out, acc, p, text::Tokenizer::FromDirectory(CorpusTokenizerDir(p)), finished);
}

void RunReduce(ShardContext& ctx, const std::string& config) {
  const Json& p = ctx.params();
  std::vector<MapInput> maps;
  for (const auto& in : ctx.task().inputs) {
    if (in.key.kind() != "harvest") continue;
    const auto index = in.key.params().find("shard_index");
    maps.push_back({in.path, in.key.id().hex,
                    index != in.key.params().end() && index->is_number_integer()
                        ? index->get<int64_t>()
                        : -1});
  }
  const int64_t shard_count = p.at("shard_count").get<int64_t>();
  const Accumulators acc = ReduceMapFiles(maps, shard_count, config);
  const Derived derived = Derive(acc, p.at("pmi").at("top_k").get<int64_t>());
  H5Writer& out = ctx.out();
  WriteAccumulators(out, acc, {"reduce", -1, shard_count, config});
  WriteDerived(out, acc, derived);
  WriteTextParts(out, acc, p, true);
  for (const auto& [name, value] : HarvestMetrics(acc, derived)) ctx.Metric(name, value);
  ctx.Progress(1, 1);
}

}  // namespace

Options MakeOptions(const Json& p, const ModelConfig& config, int64_t seq_len, int64_t rows,
                    uint64_t seed) {
  Options o;
  const Json& comp = p.at("components");
  const auto point_name = comp.at("point").get<std::string>();
  const auto point = ParseCapturePoint(point_name);
  if (!point) throw std::runtime_error(fmt::format("components.point: unknown '{}'", point_name));
  o.point = std::string(ToString(*point));
  o.width = PointWidth(*point, config);
  for (const auto& l : comp.at("layers")) {
    const int64_t layer = l.get<int64_t>();
    if (layer < 0 || layer >= config.num_hidden_layers)
      throw std::runtime_error(
          fmt::format("components.layers: the model has no layer {} (it has {})", layer,
                      config.num_hidden_layers));
    o.layers.push_back(layer);
  }
  if (o.layers.empty()) {
    o.layers.resize(static_cast<size_t>(config.num_hidden_layers));
    std::iota(o.layers.begin(), o.layers.end(), 0);
  }
  o.components = o.width * static_cast<int64_t>(o.layers.size());
  o.vocab = config.vocab_size;
  o.seq_len = seq_len;
  o.threshold = p.at("threshold").get<double>();
  o.pre = *point == CapturePoint::kMlpPost;
  const Json& stats = p.at("stats");
  o.cooc = stats.at("cooc").get<bool>();
  o.input_tokens = stats.at("input_tokens").get<bool>();
  o.output_tokens = stats.at("output_tokens").get<bool>();
  const Json& res = p.at("reservoir");
  o.k = res.at("k").get<int64_t>();
  o.context = res.at("context").get<int64_t>();
  o.per_batch = res.at("per_batch").get<int64_t>();
  o.weight_by_activation = res.at("weighting").get<std::string>() == "activation";
  o.seed = seed;
  o.batch_rows = p.at("data").at("batch").get<int64_t>();
  o.n_batches = (rows + o.batch_rows - 1) / o.batch_rows;
  if (auto problems = o.Problems(); !problems.empty())
    throw std::runtime_error(fmt::format("harvest: {}", fmt::join(problems, "; ")));
  return o;
}

void HarvestBatches(const Model& model, const TokenSource& source, int64_t rows, int64_t b0,
                    int64_t b1, Accumulators& acc, BatchUpdater& updater,
                    const std::function<void(int64_t)>& progress) {
  const Options& o = acc.options;
  const auto point = *ParseCapturePoint(o.point);
  const int64_t T = o.seq_len, V = o.vocab;
  Capture cap;
  for (int64_t l : o.layers) {
    cap.Request(point, l);
    if (o.pre) cap.Request(CapturePoint::kMlpPre, l);
  }
  ForwardOptions fo;
  fo.capture = &cap;
  // Without output-token statistics the logits are not used: compute one position's only.
  if (!o.output_tokens) fo.logit_positions = torch::zeros({1}, torch::kLong);
  c10::InferenceMode inference;
  std::vector<int64_t> row_ids;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t r0 = b * o.batch_rows, nr = std::min(o.batch_rows, rows - r0);
    const std::vector<int32_t> tokens = source.Rows(r0, nr);
    row_ids.resize(static_cast<size_t>(nr));
    std::iota(row_ids.begin(), row_ids.end(), r0);
    const int64_t n = nr * T;
    const auto logits = model.Forward(TokensTensor(tokens, nr, T, model.device()), fo);
    std::vector<torch::Tensor> keep;
    torch::Tensor probs;
    if (o.output_tokens)
      probs = torch::softmax(logits.reshape({n, V}).to(torch::kFloat32), -1)
                  .to(torch::kCPU)
                  .contiguous();
    BatchView view;
    view.index = b;
    view.rows = nr;
    view.tokens = tokens.data();
    view.row_ids = row_ids.data();
    view.post = Panels(cap, point, o.layers, n, o.width, keep);
    if (o.pre) view.pre = Panels(cap, CapturePoint::kMlpPre, o.layers, n, o.width, keep);
    view.probs = o.output_tokens ? probs.data_ptr<float>() : nullptr;
    updater.Apply(view, acc);
    cap.Clear();
    if (progress) progress(b - b0 + 1);
  }
}

}  // namespace harvest

void RunHarvest(ShardContext& ctx) {
  using namespace harvest;
  namespace fs = std::filesystem;
  const Json& p = ctx.params();
  const std::string config = ConfigText(p);
  if (ctx.task().key.role() == ShardRole::kReduce || p.value("role", "") == "reduce")
    return RunReduce(ctx, config);

  at::set_num_threads(std::max(1, ctx.threads()));
  const std::string base_dir = ResolveBaseCheckpoint(ctx.task(), p.at("base").get<std::string>());
  // model.dtype: the compute dtype; captured activations are read as float32 (Panels).
  const Model model = Model::Load(base_dir, torch::Device(ctx.device()),
                                  ParseComputeDtype(p.at("model").at("dtype").get<std::string>()));
  const ModelConfig& mc = model.config();
  const Json& data = p.at("data");
  int64_t rows = data.at("rows").get<int64_t>();
  const TokenSource source = MakeSource(p, ctx.task().inputs, base_dir, mc, rows);
  if (source.seq_len() > mc.max_position_embeddings)
    throw std::runtime_error(fmt::format("harvest: rows have {} tokens, the model's context is {}",
                                         source.seq_len(), mc.max_position_embeddings));

  const Options options =
      MakeOptions(p, mc, source.seq_len(), rows, static_cast<uint64_t>(ctx.seed()));
  const int64_t shard_index = p.value("shard_index", int64_t{0});
  const int64_t shard_count = p.value("shard_count", int64_t{1});
  Collective* gang = ctx.collective();
  std::optional<DeviceStaged> staged;  // NCCL takes device pointers; the accumulators are host
  if (gang && gang->backend() == "nccl") gang = &staged.emplace(*gang, model.device());
  const auto [b0, b1] = SliceBatches(options.n_batches, shard_index, shard_count,
                                     gang ? gang->rank() : 0, gang ? gang->size() : 1);
  Accumulators acc(options);
  BatchUpdater updater;
  HarvestBatches(model, source, rows, b0, b1, acc, updater,
                 [&](int64_t done) { ctx.Progress(done, b1 - b0); });
  if (gang) {
    GangReduce(acc, *gang);
    if (gang->rank() != 0) return;  // rank 0 of the gang publishes
  }

  const bool map = shard_count > 1;
  H5Writer& out = ctx.out();
  WriteAccumulators(out, acc, {map ? "map" : "single", shard_index, shard_count, config});
  out.Attr("/", "base_checkpoint", fs::absolute(base_dir).string());
  if (map) {
    WriteTextParts(out, acc, p, false);
    ctx.Metric("n_tokens", static_cast<double>(acc.n_tokens));
    return;
  }
  const Derived derived = Derive(acc, p.at("pmi").at("top_k").get<int64_t>());
  WriteDerived(out, acc, derived);
  WriteTextParts(out, acc, p, true);
  for (const auto& [name, value] : HarvestMetrics(acc, derived)) ctx.Metric(name, value);
}

void RegisterHarvestRunners(RunnerRegistry& runners) { runners.Add("harvest", RunHarvest); }

}  // namespace seedgrid
