#include "experiments/model/adapters.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/store.h"

namespace seedgrid {
namespace {

// Modules of a group in row order.
std::vector<ModuleKind> GroupModules(const ModelConfig& c, LinearGroup g) {
  switch (g) {
    case LinearGroup::kQkv: return {ModuleKind::kQ, ModuleKind::kK, ModuleKind::kV};
    case LinearGroup::kO: return {ModuleKind::kO};
    case LinearGroup::kGateUp:
      return c.gated_mlp ? std::vector{ModuleKind::kGate, ModuleKind::kUp}
                         : std::vector{ModuleKind::kUp};
    case LinearGroup::kDown: return {ModuleKind::kDown};
  }
  return {};
}

constexpr LinearGroup kGroups[] = {LinearGroup::kQkv, LinearGroup::kO, LinearGroup::kGateUp,
                                   LinearGroup::kDown};

std::string GroupKey(int64_t layer, LinearGroup g) {
  static constexpr const char* kNames[] = {"self_attn.qkv", "self_attn.o_proj", "mlp.gate_up",
                                           "mlp.down_proj"};
  return fmt::format("model.layers.{}.{}", layer, kNames[static_cast<int>(g)]);
}

bool Wanted(const AdapterTargets& t, ModuleKind m) {
  return std::find(t.modules.begin(), t.modules.end(), m) != t.modules.end();
}

void CheckTargets(const Model& model, const AdapterTargets& t) {
  if (t.modules.empty()) throw std::runtime_error("adapter targets: no modules");
  if (!model.config().gated_mlp && Wanted(t, ModuleKind::kGate))
    throw std::runtime_error("adapter targets: 'gate' given but the model's MLP is not gated");
}

// Targeted modules of group g at layer l (row order).
std::vector<ModuleKind> Targeted(const Model& model, const AdapterTargets& t,
                                 const std::vector<int64_t>& layers, int64_t l, LinearGroup g) {
  std::vector<ModuleKind> out;
  if (std::find(layers.begin(), layers.end(), l) == layers.end()) return out;
  for (ModuleKind m : GroupModules(model.config(), g))
    if (Wanted(t, m)) out.push_back(m);
  return out;
}

int64_t InFeatures(const ModelConfig& c, ModuleKind m) {
  switch (m) {
    case ModuleKind::kO: return c.q_dim();
    case ModuleKind::kDown: return c.intermediate_size;
    default: return c.hidden_size;
  }
}

int64_t OutFeatures(const Model& model, ModuleKind m) {
  const auto [b, e] = model.GroupRows(m);
  return e - b;
}

// y + scale·[xa_1·B_1ᵀ | xa_2·B_2ᵀ | ...] over the modules of a fused group (B_i [out_i, r_i],
// r_i = 0 for a module the adapter leaves alone; xa's columns are the modules' r_i in order),
// in place on y, a fresh GEMM output: one addmm_ per module into its column block of y. The
// [out, Σr_i] block-diagonal B in one GEMM would multiply the zero blocks too: 3x the FLOPs of
// a q|k|v group's factors, 2x for gate|up, forward and twice in backward. Backward: y's
// gradient passes through; per module grad B_i = scale·g_iᵀ·xa_i and grad xa_i = scale·g_i·B_i,
// both GEMMs on column blocks of g and xa (strided views, no copies).
class LoraUpdate : public torch::autograd::Function<LoraUpdate> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor y,
                               const torch::Tensor& xa, double scale, at::TensorList blocks) {
    int64_t first = 0, col = 0;
    for (const auto& b : blocks) {
      const int64_t out = b.size(0), r = b.size(1);
      if (r > 0) y.narrow(1, first, out).addmm_(xa.narrow(1, col, r), b.t(), 1.0, scale);
      first += out;
      col += r;
    }
    ctx->mark_dirty({y});
    std::vector<torch::Tensor> saved = {xa};
    saved.insert(saved.end(), blocks.begin(), blocks.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["scale"] = scale;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto& g = grad[0];
    const auto& xa = saved[0];
    auto gxa = torch::zeros_like(xa);
    torch::autograd::variable_list out = {g, gxa, torch::Tensor()};
    int64_t first = 0, col = 0;
    for (size_t i = 1; i < saved.size(); ++i) {
      const auto& b = saved[i];
      const int64_t n_out = b.size(0), r = b.size(1);
      torch::Tensor gb;
      if (r > 0) {
        const auto gi = g.narrow(1, first, n_out), xi = xa.narrow(1, col, r);
        gb = gi.t().mm(xi).mul_(scale);
        auto gxi = gxa.narrow(1, col, r);
        at::mm_out(gxi, gi, b);
        gxi.mul_(scale);
      }
      out.push_back(gb);
      first += n_out;
      col += r;
    }
    return out;
  }
};

}  // namespace

std::vector<int64_t> AdapterTargets::Layers(int64_t n_layers) const {
  if (!(layer_lo >= 0 && layer_lo <= layer_hi && layer_hi <= 1))
    throw std::runtime_error(
        fmt::format("adapter targets: layer range [{}, {}] must satisfy 0 <= lo <= hi <= 1",
                    layer_lo, layer_hi));
  const auto lo = static_cast<int64_t>(std::floor(layer_lo * static_cast<double>(n_layers)));
  auto hi = static_cast<int64_t>(std::floor(layer_hi * static_cast<double>(n_layers)));
  hi = std::min(hi, n_layers);
  std::vector<int64_t> out;
  for (int64_t l = lo; l < hi; ++l) out.push_back(l);
  if (out.empty() && lo < n_layers) out.push_back(lo);
  if (out.empty())
    throw std::runtime_error(
        fmt::format("adapter targets: layer range [{}, {}] selects no layer of {}", layer_lo,
                    layer_hi, n_layers));
  return out;
}

void TrainableAdapter::set_batch_slice(int64_t index, int64_t count) {
  if (count < 1 || index < 0 || index >= count)
    throw std::runtime_error(
        fmt::format("adapter batch slice {} of {}: out of range", index, count));
  slice_index_ = index;
  slice_count_ = count;
}

// ---- LoRA ------------------------------------------------------------------------------------

LoraAdapter::LoraAdapter(const Model& model, const LoraOptions& options, AdapterTargets targets,
                         uint64_t seed)
    : model_(model), options_(options), targets_(std::move(targets)) {
  CheckTargets(model, targets_);
  if (options_.rank < 1) throw std::runtime_error("lora.rank: must be >= 1");
  if (!(options_.dropout >= 0 && options_.dropout < 1))
    throw std::runtime_error("lora.dropout: must be in [0, 1)");
  if (options_.init != "kaiming" && options_.init != "gaussian")
    throw std::runtime_error("lora.init: '" + options_.init + "' is not kaiming or gaussian");
  const auto& c = model.config();
  const int64_t r = options_.rank;
  layers_ = targets_.Layers(c.num_hidden_layers);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (int64_t l : layers_) {
    for (LinearGroup g : kGroups) {
      const auto mods = Targeted(model, targets_, layers_, l, g);
      if (mods.empty()) continue;
      shapes.push_back({GroupKey(l, g) + ".lora_A",
                        {r * static_cast<int64_t>(mods.size()), InFeatures(c, mods[0])}});
      for (ModuleKind m : mods) {
        names_.push_back(HfWeightName(l, m));
        shapes.push_back({HfWeightName(l, m) + ".lora_B", {OutFeatures(model, m), r}});
      }
    }
  }
  params_ = FlatParams(shapes, model.device());
  for (int64_t l : layers_) {
    for (LinearGroup g : kGroups) {
      const auto mods = Targeted(model, targets_, layers_, l, g);
      if (mods.empty()) continue;
      GroupParams gp;
      gp.a = params_.Get(GroupKey(l, g) + ".lora_A");
      for (ModuleKind m : GroupModules(c, g)) {
        if (std::find(mods.begin(), mods.end(), m) != mods.end())
          gp.blocks.push_back(params_.Get(HfWeightName(l, m) + ".lora_B"));
        else
          gp.blocks.push_back(torch::zeros({OutFeatures(model, m), 0}, params_.flat().options()));
      }
      groups_[{l, g}] = std::move(gp);
    }
  }
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& name : names_) {
    auto a = A(name), b = B(name);
    const double in = static_cast<double>(a.size(1));
    torch::Tensor init_a = torch::empty(a.sizes(), torch::kFloat32);
    if (options_.init == "kaiming") {
      const double bound = 1.0 / std::sqrt(in);
      init_a.uniform_(-bound, bound, gen);
    } else {
      init_a.normal_(0.0, 1.0 / static_cast<double>(r), gen);
    }
    a.copy_(init_a);
    if (options_.init_b_std > 0)
      b.copy_(torch::empty(b.sizes(), torch::kFloat32).normal_(0.0, options_.init_b_std, gen));
  }
}

torch::Tensor LoraAdapter::A(const std::string& hf_name) const {
  const auto parsed = ParseHfWeightName(hf_name);
  if (!parsed || !params_.Has(hf_name + ".lora_B"))
    throw std::runtime_error("LoRA: '" + hf_name + "' is not a targeted weight");
  const auto [layer, m] = *parsed;
  const LinearGroup g = Model::GroupOf(m);
  const auto mods = Targeted(model_, targets_, layers_, layer, g);
  const int64_t i = std::find(mods.begin(), mods.end(), m) - mods.begin();
  return AliasRows(params_.Get(GroupKey(layer, g) + ".lora_A"), i * options_.rank,
                   (i + 1) * options_.rank);
}

torch::Tensor LoraAdapter::B(const std::string& hf_name) const {
  if (!params_.Has(hf_name + ".lora_B"))
    throw std::runtime_error("LoRA: '" + hf_name + "' is not a targeted weight");
  return params_.Get(hf_name + ".lora_B");
}

torch::Tensor LoraAdapter::Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                                  const torch::Tensor& weight, const torch::Tensor& bias,
                                  const torch::Tensor& residual) const {
  auto y = BaseLinear(x, weight, bias, residual);
  const auto it = groups_.find({layer, group});
  if (it == groups_.end()) return y;
  const GroupParams& gp = it->second;
  auto xin = x.to(gp.a.scalar_type());  // float32 factors: the input cast to them (PEFT)
  if (training_ && options_.dropout > 0) {
    if (slice_count_ == 1) {
      xin = torch::dropout(xin, options_.dropout, true);
    } else {
      // A data-parallel rank: draw the mask of the whole global batch, as torch::dropout does
      // for the ranks:1 input of the same shape, and keep this rank's rows (x is [rows·T, in],
      // batch-major, so they are contiguous).
      const int64_t n = xin.size(0);
      torch::Tensor noise;
      {
        torch::NoGradGuard no_grad;
        noise = torch::dropout(torch::ones({n * slice_count_, xin.size(1)}, xin.options()),
                               options_.dropout, true)
                    .narrow(0, slice_index_ * n, n);
      }
      xin = xin * noise;
    }
  }
  auto xa = xin.mm(gp.a.t());  // [N, r·m]
  // Summed in float32, cast back to the model's dtype (no-ops on a float32 model).
  const auto dt = y.scalar_type();
  return LoraUpdate::apply(y.to(xa.scalar_type()), xa, scale(), at::TensorList(gp.blocks)).to(dt);
}

std::map<std::string, torch::Tensor> LoraAdapter::DeltaWeights() const {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : names_) out[name] = B(name).mm(A(name)).mul_(scale());
  return out;
}

void LoraAdapter::WriteFactors(H5Writer& w, const std::string& prefix) const {
  torch::NoGradGuard no_grad;
  for (const auto& name : names_) {
    const auto a = A(name).detach().to(torch::kCPU).contiguous();
    const auto b = B(name).detach().to(torch::kCPU).contiguous();
    w.Write(fmt::format("{}/{}/A", prefix, name), a.data_ptr<float>(), Shape{a.size(0), a.size(1)});
    w.Write(fmt::format("{}/{}/B", prefix, name), b.data_ptr<float>(), Shape{b.size(0), b.size(1)});
  }
}

// ---- IA3 -------------------------------------------------------------------------------------

Ia3Adapter::Ia3Adapter(const Model& model, AdapterTargets targets)
    : model_(model), targets_(std::move(targets)) {
  CheckTargets(model, targets_);
  const auto& c = model.config();
  layers_ = targets_.Layers(c.num_hidden_layers);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (int64_t l : layers_)
    for (LinearGroup g : kGroups)
      for (ModuleKind m : Targeted(model, targets_, layers_, l, g)) {
        names_.push_back(HfWeightName(l, m));
        const int64_t n = m == ModuleKind::kDown ? InFeatures(c, m) : OutFeatures(model, m);
        shapes.push_back({HfWeightName(l, m) + ".ia3_l", {n}});
      }
  params_ = FlatParams(shapes, model.device());
  for (int64_t l : layers_) {
    for (LinearGroup g : kGroups) {
      const auto mods = Targeted(model, targets_, layers_, l, g);
      if (mods.empty()) continue;
      std::vector<torch::Tensor> parts;
      for (ModuleKind m : GroupModules(c, g)) {
        if (g == LinearGroup::kDown || std::find(mods.begin(), mods.end(), m) != mods.end())
          parts.push_back(params_.Get(HfWeightName(l, m) + ".ia3_l"));
        else
          parts.push_back(torch::ones({OutFeatures(model, m)}, params_.flat().options()));
      }
      groups_[{l, g}] = std::move(parts);
    }
  }
  torch::NoGradGuard no_grad;
  for (const auto& name : names_) params_.Get(name + ".ia3_l").fill_(1.0);
}

torch::Tensor Ia3Adapter::L(const std::string& hf_name) const {
  if (!params_.Has(hf_name + ".ia3_l"))
    throw std::runtime_error("IA3: '" + hf_name + "' is not a targeted weight");
  return params_.Get(hf_name + ".ia3_l");
}

torch::Tensor Ia3Adapter::Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                                 const torch::Tensor& weight, const torch::Tensor& bias,
                                 const torch::Tensor& residual) const {
  const auto it = groups_.find({layer, group});
  if (it == groups_.end()) return BaseLinear(x, weight, bias, residual);
  const auto& parts = it->second;
  const auto dt = x.scalar_type();  // scaled in float32, cast back (PEFT's IA3 on bf16)
  if (group == LinearGroup::kDown)  // feed-forward: scale the input
    return BaseLinear((x.to(parts[0].scalar_type()) * parts[0]).to(dt), weight, bias, residual);
  auto scale = parts.size() == 1 ? parts[0] : torch::cat(parts);
  auto y = (BaseLinear(x, weight, bias, {}).to(scale.scalar_type()) * scale).to(dt);
  return residual.defined() ? residual + y : y;
}

std::map<std::string, torch::Tensor> Ia3Adapter::DeltaWeights() const {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : names_) {
    const auto w = model_.Weight(name);
    const auto lm1 = L(name) - 1.0;
    const bool down = ParseHfWeightName(name)->second == ModuleKind::kDown;
    out[name] = down ? w * lm1.view({1, -1}) : w * lm1.view({-1, 1});
  }
  return out;
}

void Ia3Adapter::WriteFactors(H5Writer& w, const std::string& prefix) const {
  torch::NoGradGuard no_grad;
  for (const auto& name : names_) {
    const auto l = L(name).detach().to(torch::kCPU).contiguous();
    w.Write(fmt::format("{}/{}/l", prefix, name), l.data_ptr<float>(), Shape{l.size(0)});
  }
}

// ---- Optimiser -------------------------------------------------------------------------------

FlatAdamW::FlatAdamW(FlatParams& params, Options options) : params_(params), options_(options) {
  if (!params_.grad_flat().defined())
    throw std::logic_error("FlatAdamW: call EnableGrad() on the parameters first");
  m_ = torch::zeros_like(params_.flat());
  v_ = torch::zeros_like(params_.flat());
}

void FlatAdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const auto& p = params_.flat();
  const auto& g = params_.grad_flat();
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bc1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  if (options_.weight_decay != 0) p.mul_(1.0 - lr * options_.weight_decay);
  m_.mul_(b1).add_(g, 1.0 - b1);
  v_.mul_(b2).addcmul_(g, g, 1.0 - b2);
  auto denom = v_.sqrt().div_(std::sqrt(bc2)).add_(options_.eps);
  p.addcdiv_(m_, denom, -lr / bc1);
}

double ScheduledLr(const std::string& schedule, double lr, int64_t step, int64_t total,
                   int64_t warmup, double min_ratio) {
  if (warmup > 0 && step < warmup)
    return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (schedule == "constant") return lr;
  if (schedule != "cosine") throw std::runtime_error("unknown lr schedule '" + schedule + "'");
  const double span = static_cast<double>(std::max<int64_t>(total - warmup, 1));
  const double t = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
  return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(M_PI * t)));
}

double ClipGradNorm(FlatParams& params, double max_norm) {
  torch::NoGradGuard no_grad;
  const double norm = params.grad_flat().norm().item<double>();
  if (max_norm > 0 && norm > max_norm) params.grad_flat().mul_(max_norm / (norm + 1e-6));
  return norm;
}

}  // namespace seedgrid
