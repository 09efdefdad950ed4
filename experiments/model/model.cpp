#include "experiments/model/model.h"

#include <sys/mman.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>

#include <fmt/format.h>

#include <fmt/ranges.h>
#include "core/strings.h"

#include "core/store.h"
#include "experiments/model/safetensors.h"

namespace seedgrid {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kAlignBytes = 64;  // FlatParams slots start on 64-byte boundaries
constexpr int64_t kFoldRows = 128;   // fold attention heads into one GEMM up to H·T rows

std::string LayerPrefix(int64_t l) { return fmt::format("model.layers.{}.", l); }

// An alias of the elements at element `offset` of contiguous `base`, shaped `shape`.
torch::Tensor Alias(const torch::Tensor& base, int64_t offset, at::IntArrayRef shape) {
  char* ptr = static_cast<char*>(base.data_ptr()) + offset * base.element_size();
  torch::Tensor keep = base;
  return torch::from_blob(
      ptr, shape, [keep](void*) mutable { keep.reset(); },
      torch::TensorOptions().dtype(base.scalar_type()).device(base.device()));
}

// HF's RMSNorm in either dtype: normalise in float32; LlamaRMSNorm (and Qwen's, Mistral's)
// casts back, then scales (weight · x̂.to(dtype)); GemmaRMSNorm scales by (1 + w) in float32,
// then casts back. In float32 both are x·rsqrt(mean(x²) + eps)·w.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& w, double eps,
                      bool plus_one = false) {
  const auto dt = x.scalar_type();
  auto h = x.to(torch::kFloat32);
  h = h * torch::rsqrt(h.pow(2).mean(-1, true).add_(eps));
  if (plus_one) return (h * (w.to(torch::kFloat32) + 1.0)).to(dt);
  return h.to(dt) * w;
}

// One (B·H) x rows x rows block of softmax probabilities in float32, cast back to the scores'
// dtype (HF's eager attention: softmax(..., dtype=float32).to(query.dtype)).
torch::Tensor Softmax(const torch::Tensor& scores) {
  return torch::softmax(scores, -1, torch::kFloat32).to(scores.scalar_type());
}

// The torch dtype of a stored floating-point tensor; SafetensorsError naming it otherwise.
torch::ScalarType StoredScalarType(const TensorView& v, const std::string& file) {
  switch (v.dtype) {
    case StDType::kF64: return torch::kFloat64;
    case StDType::kF32: return torch::kFloat32;
    case StDType::kF16: return torch::kFloat16;
    case StDType::kBF16: return torch::kBFloat16;
    default:
      throw SafetensorsError(fmt::format(
          "safetensors file {}: tensor '{}': dtype {} is not a floating-point weight type "
          "(need F32, F16, BF16 or F64)",
          file, v.name, ToString(v.dtype)));
  }
}

// The staging buffer a load converts through: small enough to stay in cache between the read
// and the conversion, large enough that the read calls do not count.
constexpr size_t kLoadChunkBytes = size_t{4} << 20;
// CPU storage at least this large comes from ZeroHostStorage.
constexpr size_t kKernelZeroedBytes = size_t{1} << 20;

// A zero-filled CPU buffer of `numel` elements straight from the kernel (an anonymous
// mapping): its pages read as zero until first written, so a model that is loaded next pays no
// memset over the weights it overwrites anyway. torch::zeros wrote all of it first: for the
// Qwen3-0.6B-shaped checkpoint that took longer than reading the file (BENCHMARKS.md §12).
torch::Tensor ZeroHostStorage(int64_t numel, torch::ScalarType dtype) {
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error(
        fmt::format("cannot allocate {} bytes of model storage: {}", bytes, std::strerror(errno)));
  return torch::from_blob(
      p, {numel}, [bytes](void* q) { ::munmap(q, bytes); },
      torch::TensorOptions().dtype(dtype).device(torch::kCPU));
}

// Copies checkpoint tensor `view` into its storage view `dst` (the file's shape or, for NeoX's
// interleaved qkv, a view of it: dst's dim 0 splits the file's bytes into equal contiguous
// runs), converting the dtype. The file's mapping is never touched: the process holds the
// storage plus one staging buffer, never the file. Three paths, fastest first:
//   * same dtype into contiguous CPU storage: one pread straight into it;
//   * into contiguous float32 CPU storage: pread chunks into `staging`, ConvertToFloat32 from
//     there (no OpenMP region per 4 MiB chunk: on a busy machine each can cost a scheduler
//     slice);
//   * otherwise runs of whole dim-0 slices through `staging`, copy_ converting them and writing
//     through dst's strides (GPT-2's transposed Conv1D, NeoX's interleaving) or to its device.
// `staging` is reused across tensors and grown to fit one dim-0 slice.
void CopyIntoStorage(const SafetensorsFile& file, const TensorView& view, const torch::Tensor& dst,
                     torch::Tensor& staging) {
  const torch::ScalarType stored = StoredScalarType(view, file.path());
  if (view.nbytes == 0) return;
  const bool host = dst.is_cpu() && dst.is_contiguous();
  if (host && dst.scalar_type() == stored) {
    file.Read(view, 0, view.nbytes, dst.data_ptr());
    return;
  }
  const auto stage = [&](size_t bytes) {
    if (!staging.defined() || static_cast<size_t>(staging.numel()) < bytes)
      staging =
          torch::empty({static_cast<int64_t>(std::max(bytes, kLoadChunkBytes))}, torch::kUInt8);
    return staging.data_ptr();
  };
  if (host && dst.scalar_type() == torch::kFloat32) {
    const size_t elem = StDTypeSize(view.dtype);
    auto* out = dst.data_ptr<float>();
    for (size_t begin = 0; begin < view.nbytes; begin += kLoadChunkBytes) {
      const size_t n = std::min(kLoadChunkBytes, view.nbytes - begin);
      void* buf = stage(n);
      file.Read(view, begin, n, buf);
      const TensorView chunk{view.name,
                             view.dtype,
                             {static_cast<int64_t>(n / elem)},
                             static_cast<const uint8_t*>(buf),
                             n};
      ConvertToFloat32(chunk, out + begin / elem, file.path());
    }
    return;
  }
  const int64_t runs = dst.dim() == 0 ? 1 : dst.size(0);
  const size_t run_bytes = view.nbytes / static_cast<size_t>(runs);
  const int64_t per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kLoadChunkBytes / run_bytes));
  std::vector<int64_t> shape(dst.sizes().begin(), dst.sizes().end());
  for (int64_t r = 0; r < runs; r += per_chunk) {
    const int64_t k = std::min(per_chunk, runs - r);
    void* buf = stage(static_cast<size_t>(k) * run_bytes);
    file.Read(view, static_cast<size_t>(r) * run_bytes, static_cast<size_t>(k) * run_bytes, buf);
    if (dst.dim() == 0) {
      dst.copy_(torch::from_blob(buf, {}, stored));
      continue;
    }
    shape[0] = k;
    dst.narrow(0, r, k).copy_(torch::from_blob(buf, shape, stored));
  }
}

// In float32, rounded once to x's dtype: LibTorch 1.13's bf16 silu and gelu-tanh kernels round
// their intermediate steps (up to 2 ulp off the rounded float32 result).
torch::Tensor Activation(const torch::Tensor& x, const std::string& act) {
  const auto xf = x.to(torch::kFloat32);
  if (act == "silu") return torch::silu(xf).to(x.scalar_type());
  if (act == "gelu") return torch::gelu(xf).to(x.scalar_type());
  if (act == "gelu_pytorch_tanh") return torch::gelu(xf, "tanh").to(x.scalar_type());
  return torch::relu(x);
}

constexpr int64_t kIgnoreTarget = -100;  // cross_entropy's ignore_index (HF's too)
// Rows of logits per chunk of the fused LM head + cross-entropy. Measured with OpenBLAS at
// [1024, 1024] x [151,936, 1024] (1 thread, CPU time): chunks of 256 rows made the head's two
// GEMMs ~5% cheaper than the plain path's [1024, V] ones, chunks of 110 rows ~5% dearer. At most
// kLossChunkElements logits (256 MiB of float32) for vocabularies above 262,144.
constexpr int64_t kLossChunkRows = 256;
constexpr int64_t kLossChunkElements = int64_t{1} << 26;

// Next-token targets [B, T] int64 for tokens [B, T]: shifted left, kIgnoreTarget at the last
// position and where loss_mask [B, T-1] (bool/float, optional) is false.
torch::Tensor NextTokenTargets(const torch::Tensor& tokens, const torch::Tensor& loss_mask) {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  auto targets = torch::full({B, T}, kIgnoreTarget, tokens.options().dtype(torch::kLong));
  auto next = tokens.narrow(1, 1, T - 1).to(torch::kLong);
  if (loss_mask.defined())
    next = torch::where(loss_mask.to(tokens.device()).to(torch::kBool), next,
                        torch::full({}, kIgnoreTarget, next.options()));
  targets.narrow(1, 0, T - 1).copy_(next);
  return targets;
}

// mean over the rows with a target of cross_entropy(x·headᵀ, targets) for x [N, d], head [V, d]
// (compute dtype), targets int64 [N] (kIgnoreTarget: no loss), chunk by chunk of rows: the
// logits of a chunk ([256, V]) live in one reused float32 buffer, turned in place into
// log-probabilities, then (when a gradient is wanted) into the gradient wrt the logits, p − onehot,
// which is multiplied out right away into d loss/dx (and d loss/dhead). Backward only scales those
// by the incoming gradient, so the LM head costs one GEMM forward and one (or two) in the same
// pass, as the plain path's forward and backward do, with ~3 passes over each chunk instead of
// ~6 over [N, V] tensors allocated afresh. Row weights 1/n_valid (0 without a target) are
// applied on the [n, d] side in float32; a bfloat16 model casts logits and gradient as the
// plain path's .to(float32) does (gradient scaled first, then rounded, as there).
class HeadCrossEntropy : public torch::autograd::Function<HeadCrossEntropy> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& head, const torch::Tensor& targets, bool grad_x,
                               bool grad_head) {
    const int64_t N = x.size(0), V = head.size(0);
    const bool low = x.scalar_type() != torch::kFloat32;
    const auto f32 = x.options().dtype(torch::kFloat32);
    const auto valid = targets.ne(kIgnoreTarget).to(torch::kFloat32).unsqueeze(1);  // [N, 1]
    const auto n_valid = valid.sum();
    const auto weight = valid / n_valid;
    const auto target = targets.clamp_min(0).unsqueeze(1);  // [N, 1]; ignored rows: any id
    const int64_t rows =
        std::clamp<int64_t>(kLossChunkElements / V, 1, std::min(kLossChunkRows, N));
    auto buffer = torch::empty({rows, V}, f32);
    auto loss = torch::zeros({}, f32);
    torch::Tensor gx, gw;
    if (grad_x) gx = torch::empty_like(x);
    if (grad_head) gw = torch::zeros(head.sizes(), f32);
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t n = std::min(rows, N - r0);
      const auto xc = x.narrow(0, r0, n), tc = target.narrow(0, r0, n);
      const auto wc = weight.narrow(0, r0, n);
      auto lc = buffer.narrow(0, 0, n);
      if (low) {
        lc.copy_(xc.mm(head.t()));
      } else {
        at::mm_out(lc, xc, head.t());
      }
      at::_log_softmax_out(lc, lc, 1, false);  // row-wise: each row's max and sum come first
      loss.sub_((lc.gather(1, tc) * valid.narrow(0, r0, n)).sum());
      if (!grad_x && !grad_head) continue;
      lc.exp_().scatter_add_(1, tc, torch::full({n, 1}, -1.0, f32));  // p − onehot
      if (low) lc.mul_(wc);
      const auto g = low ? lc.to(x.scalar_type()) : lc;
      if (grad_x) {
        auto gxc = gx.narrow(0, r0, n);
        at::mm_out(gxc, g, head);
        if (!low) gxc.mul_(wc);
      }
      if (grad_head) {
        if (low) {
          gw.add_(g.t().mm(xc));
        } else {
          gw.addmm_(g.t(), xc * wc);
        }
      }
    }
    ctx->saved_data["gx"] = gx;
    ctx->saved_data["gw"] = grad_head ? gw.to(head.scalar_type()) : gw;
    return loss.div_(n_valid);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto gx = ctx->saved_data["gx"].toTensor(), gw = ctx->saved_data["gw"].toTensor();
    const auto& g = grad[0];
    return {gx.defined() ? gx * g.to(gx.scalar_type()) : gx,
            gw.defined() ? gw * g.to(gw.scalar_type()) : gw, torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

struct Names {
  std::string qkv, qkv_bias, o, o_bias, gate_up, gate_up_bias, down, down_bias, ln1, ln2, qn, kn,
      ln1_bias, ln2_bias, post_attn, post_mlp;
};

bool IsNormSlot(Slot s) {
  return s == Slot::kLn1 || s == Slot::kLn2 || s == Slot::kFinalNorm || s == Slot::kQNorm ||
         s == Slot::kKNorm || s == Slot::kPostAttnNorm || s == Slot::kPostMlpNorm;
}

Names LayerNames(int64_t l) {
  const std::string p = LayerPrefix(l);
  return {p + "self_attn.qkv",
          p + "self_attn.qkv_bias",
          p + "self_attn.o_proj.weight",
          p + "self_attn.o_proj.bias",
          p + "mlp.gate_up",
          p + "mlp.gate_up_bias",
          p + "mlp.down_proj.weight",
          p + "mlp.down_proj.bias",
          p + "input_layernorm.weight",
          p + "post_attention_layernorm.weight",
          p + "self_attn.q_norm.weight",
          p + "self_attn.k_norm.weight",
          p + "input_layernorm.bias",
          p + "post_attention_layernorm.bias",
          p + "seedgrid.attn_out_norm.weight",
          p + "seedgrid.mlp_out_norm.weight"};
}

}  // namespace

// ---- Module names ----------------------------------------------------------------------------

std::string_view ToString(ModuleKind m) {
  switch (m) {
    case ModuleKind::kQ: return "q";
    case ModuleKind::kK: return "k";
    case ModuleKind::kV: return "v";
    case ModuleKind::kO: return "o";
    case ModuleKind::kGate: return "gate";
    case ModuleKind::kUp: return "up";
    case ModuleKind::kDown: return "down";
  }
  return "?";
}

std::optional<ModuleKind> ParseModuleKind(std::string_view name) {
  for (ModuleKind m : kAllModuleKinds) {
    const std::string_view s = ToString(m);
    if (name == s || name == std::string(s) + "_proj") return m;
  }
  return std::nullopt;
}

std::string HfWeightName(int64_t layer, ModuleKind m) {
  const bool attn =
      m == ModuleKind::kQ || m == ModuleKind::kK || m == ModuleKind::kV || m == ModuleKind::kO;
  return fmt::format("{}{}.{}_proj.weight", LayerPrefix(layer), attn ? "self_attn" : "mlp",
                     ToString(m));
}

std::optional<std::pair<int64_t, ModuleKind>> ParseHfWeightName(std::string_view name) {
  constexpr std::string_view kPrefix = "model.layers.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  int64_t layer = 0;
  size_t i = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9')
    layer = layer * 10 + (name[i++] - '0');
  if (i == 0) return std::nullopt;
  for (ModuleKind m : kAllModuleKinds)
    if (HfWeightName(layer, m) == fmt::format("{}{}", kPrefix, name)) return std::pair{layer, m};
  return std::nullopt;
}

// ---- FlatParams ------------------------------------------------------------------------------

torch::Tensor AliasRows(const torch::Tensor& t, int64_t begin, int64_t end) {
  TORCH_CHECK(t.is_contiguous() && t.dim() >= 1 && begin >= 0 && begin <= end && end <= t.size(0),
              "AliasRows: bad range");
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  shape[0] = end - begin;
  const int64_t row = t.dim() == 1 ? 1 : t.numel() / std::max<int64_t>(t.size(0), 1);
  return Alias(t, begin * row, shape);
}

FlatParams::FlatParams(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                       torch::Device device, torch::ScalarType dtype) {
  const int64_t align = kAlignBytes / static_cast<int64_t>(c10::elementSize(dtype));
  int64_t total = 0;
  for (const auto& [name, shape] : shapes) {
    if (index_.count(name)) throw std::logic_error("FlatParams: duplicate name " + name);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    index_[name] = names_.size();
    names_.push_back(name);
    offsets_.push_back(total);
    total += (n + align - 1) / align * align;
  }
  total = std::max<int64_t>(total, 1);
  flat_ =
      device.is_cpu() && static_cast<size_t>(total) * c10::elementSize(dtype) >= kKernelZeroedBytes
          ? ZeroHostStorage(total, dtype)
          : torch::zeros({total}, torch::TensorOptions().dtype(dtype).device(device));
  for (size_t i = 0; i < shapes.size(); ++i)
    views_.push_back(Alias(flat_, offsets_[i], shapes[i].second));
}

const torch::Tensor& FlatParams::Get(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw std::runtime_error("no parameter named '" + name + "'");
  return views_[it->second];
}

int64_t FlatParams::offset(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) throw std::runtime_error("no parameter named '" + name + "'");
  return offsets_[it->second];
}

int64_t FlatParams::numel() const {
  int64_t n = 0;
  for (const auto& v : views_) n += v.numel();
  return n;
}

void FlatParams::EnableGrad() {
  if (grad_flat_.defined()) return;
  grad_flat_ = torch::zeros_like(flat_);
  for (size_t i = 0; i < views_.size(); ++i) {
    views_[i].set_requires_grad(true);
    views_[i].mutable_grad() = Alias(grad_flat_, offsets_[i], views_[i].sizes());
  }
}

void FlatParams::ZeroGrad() {
  if (grad_flat_.defined()) grad_flat_.zero_();
}

// ---- Capture ---------------------------------------------------------------------------------

std::string_view ToString(CapturePoint p) {
  switch (p) {
    case CapturePoint::kResidPre: return "resid_pre";
    case CapturePoint::kResidMid: return "resid_mid";
    case CapturePoint::kResidPost: return "resid_post";
    case CapturePoint::kMlpPre: return "mlp_pre";
    case CapturePoint::kMlpPost: return "mlp_post";
    case CapturePoint::kAttnPattern: return "attn_pattern";
    case CapturePoint::kAttnZ: return "attn_z";
  }
  return "?";
}

std::optional<CapturePoint> ParseCapturePoint(std::string_view name) {
  for (auto p : {CapturePoint::kResidPre, CapturePoint::kResidMid, CapturePoint::kResidPost,
                 CapturePoint::kMlpPre, CapturePoint::kMlpPost, CapturePoint::kAttnPattern,
                 CapturePoint::kAttnZ})
    if (ToString(p) == name) return p;
  return std::nullopt;
}

void Capture::Request(CapturePoint p, int64_t layer) { wanted_.insert({p, layer}); }

bool Capture::Wants(CapturePoint p, int64_t layer) const {
  return wanted_.count({p, layer}) != 0 || wanted_.count({p, -1}) != 0;
}

bool Capture::Has(CapturePoint p, int64_t layer) const { return values_.count({p, layer}) != 0; }

const torch::Tensor& Capture::Get(CapturePoint p, int64_t layer) const {
  const auto it = values_.find({p, layer});
  if (it == values_.end())
    throw std::runtime_error(fmt::format("capture: {} of layer {} was not captured (requested: {})",
                                         ToString(p), layer, Wants(p, layer) ? "yes" : "no"));
  return it->second;
}

void Capture::Put(CapturePoint p, int64_t layer, torch::Tensor t) {
  values_[{p, layer}] = std::move(t);
}

// ---- Model -----------------------------------------------------------------------------------

torch::Tensor BaseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, const torch::Tensor& residual) {
  if (residual.defined()) {  // with a bias: the module's output first, then the residual add
    return bias.defined() ? residual + torch::addmm(bias, x, weight.t())
                          : torch::addmm(residual, x, weight.t());
  }
  if (bias.defined()) return torch::addmm(bias, x, weight.t());
  return x.mm(weight.t());
}

torch::ScalarType ParseComputeDtype(std::string_view name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  throw std::runtime_error(fmt::format("dtype '{}' is not float32 or bfloat16", name));
}

std::string_view ComputeDtypeName(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    default: return "?";
  }
}

Model::Model(ModelConfig config, torch::Device device, torch::ScalarType dtype)
    : config_(std::move(config)), device_(device), dtype_(dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16)
    throw std::runtime_error(
        fmt::format("Model: compute dtype {} is not float32 or bfloat16", c10::toString(dtype)));
  config_.Validate();
  const auto& c = config_;
  const int64_t d = c.hidden_size, dm = c.intermediate_size;
  const int64_t qkv_rows = c.q_dim() + 2 * c.kv_dim();
  const int64_t gu_rows = (c.gated_mlp ? 2 : 1) * dm;
  const bool ln = c.norm == ModelConfig::Norm::kLayerNorm;
  // Storage names are internal (Llama-style); checkpoint names are views (below).
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  shapes.push_back({"model.embed_tokens.weight", {c.vocab_size, d}});
  if (c.learned_positions)
    shapes.push_back({"model.pos_embed.weight", {c.max_position_embeddings, d}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Names n = LayerNames(l);
    shapes.push_back({n.ln1, {d}});
    if (ln) shapes.push_back({n.ln1_bias, {d}});
    shapes.push_back({n.qkv, {qkv_rows, d}});
    if (c.attention_bias) shapes.push_back({n.qkv_bias, {qkv_rows}});
    if (c.qk_norm) {
      shapes.push_back({n.qn, {c.head_dim}});
      shapes.push_back({n.kn, {c.head_dim}});
    }
    shapes.push_back({n.o, {d, c.q_dim()}});
    if (c.o_bias) shapes.push_back({n.o_bias, {d}});
    if (c.sandwich_norm) shapes.push_back({n.post_attn, {d}});
    shapes.push_back({n.ln2, {d}});
    if (ln) shapes.push_back({n.ln2_bias, {d}});
    shapes.push_back({n.gate_up, {gu_rows, d}});
    if (c.mlp_bias) shapes.push_back({n.gate_up_bias, {gu_rows}});
    shapes.push_back({n.down, {d, dm}});
    if (c.mlp_bias) shapes.push_back({n.down_bias, {d}});
    if (c.sandwich_norm) shapes.push_back({n.post_mlp, {d}});
  }
  shapes.push_back({"model.norm.weight", {d}});
  if (ln) shapes.push_back({"model.norm.bias", {d}});
  if (!c.tie_word_embeddings) shapes.push_back({"lm_head.weight", {c.vocab_size, d}});
  params_ = FlatParams(shapes, device, dtype_);
  for (const auto& t : CheckpointTensors(c)) {
    file_shape_[t.name] = t.shape;
    file_order_.push_back(t.name);
    if (IsNormSlot(t.slot)) norm_names_.insert(t.name);
  }
  BindViews();

  // Norm weights start at identity (so a zero model is still well defined).
  torch::NoGradGuard no_grad;
  const double one = c.norm == ModelConfig::Norm::kRmsPlusOne ? 0.0 : 1.0;
  for (const auto& name : norm_names_) named_.at(name).fill_(one);
  InitRope();
}

// Points the layer tensors, the checkpoint names and the role names at the current storage of
// each slot: its view in params_, or the file-backed tensor LoadWeights put in its place.
void Model::BindViews() {
  const auto& c = config_;
  const bool ln = c.norm == ModelConfig::Norm::kLayerNorm;
  const auto get = [&](bool has, const std::string& name) {
    return has ? Storage(name) : torch::Tensor();
  };
  layers_.clear();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const Names n = LayerNames(l);
    LayerWeights w;
    w.ln1 = Storage(n.ln1);
    w.ln1_bias = get(ln, n.ln1_bias);
    w.qkv = Storage(n.qkv);
    w.qkv_bias = get(c.attention_bias, n.qkv_bias);
    w.q_norm = get(c.qk_norm, n.qn);
    w.k_norm = get(c.qk_norm, n.kn);
    w.o = Storage(n.o);
    w.o_bias = get(c.o_bias, n.o_bias);
    w.post_attn = get(c.sandwich_norm, n.post_attn);
    w.ln2 = Storage(n.ln2);
    w.ln2_bias = get(ln, n.ln2_bias);
    w.gate_up = Storage(n.gate_up);
    w.gate_up_bias = get(c.mlp_bias, n.gate_up_bias);
    w.down = Storage(n.down);
    w.down_bias = get(c.mlp_bias, n.down_bias);
    w.post_mlp = get(c.sandwich_norm, n.post_mlp);
    layers_.push_back(std::move(w));
  }
  embed_ = Storage("model.embed_tokens.weight");
  pos_embed_ = get(c.learned_positions, "model.pos_embed.weight");
  norm_ = Storage("model.norm.weight");
  norm_bias_ = get(ln, "model.norm.bias");
  head_ = c.tie_word_embeddings ? embed_ : Storage("lm_head.weight");

  // Checkpoint names: views in the file's layout.
  named_.clear();
  for (const auto& t : CheckpointTensors(c)) named_[t.name] = SlotView(t);
  // Role names (model.layers.N.self_attn.q_proj.weight, ...) for every family, so edits,
  // lenses and dW address q/k/v/o/gate/up/down alike on GPT-2 and Llama.
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    for (ModuleKind m : kAllModuleKinds) {
      if (m == ModuleKind::kGate && !c.gated_mlp) continue;
      const std::string name = HfWeightName(l, m);
      if (named_.count(name) == 0) {
        const auto [b, e] = GroupRows(m);
        named_[name] = AliasRows(GroupWeight(l, GroupOf(m)), b, e);
      }
    }
}

torch::Tensor Model::Storage(const std::string& name) const {
  const auto it = file_backed_.find(name);
  return it != file_backed_.end() ? it->second : params_.Get(name);
}

std::vector<torch::Tensor> Model::SlotStorage() const {
  std::vector<torch::Tensor> out;
  for (const auto& name : params_.names()) out.push_back(Storage(name));
  return out;
}

torch::Tensor Model::SlotView(const CheckpointTensor& t) {
  const auto& c = config_;
  const LayerWeights* w = t.layer >= 0 ? &layers_.at(static_cast<size_t>(t.layer)) : nullptr;
  const auto rows = [&](const torch::Tensor& x, ModuleKind m) {
    const auto [b, e] = GroupRows(m);
    return AliasRows(x, b, e);
  };
  const auto tr = [&](const torch::Tensor& x) {
    return t.stored == StoredAs::kTransposed ? x.t() : x;
  };
  const bool interleaved = t.stored == StoredAs::kHeadInterleaved;
  const int64_t H = c.num_attention_heads, D = c.head_dim;
  switch (t.slot) {
    case Slot::kEmbed: return embed_;
    case Slot::kPosEmbed: return pos_embed_;
    case Slot::kHead: return head_;
    case Slot::kFinalNorm: return norm_;
    case Slot::kFinalNormBias: return norm_bias_;
    case Slot::kLn1: return w->ln1;
    case Slot::kLn1Bias: return w->ln1_bias;
    case Slot::kLn2: return w->ln2;
    case Slot::kLn2Bias: return w->ln2_bias;
    case Slot::kPostAttnNorm: return w->post_attn;
    case Slot::kPostMlpNorm: return w->post_mlp;
    case Slot::kQNorm: return w->q_norm;
    case Slot::kKNorm: return w->k_norm;
    case Slot::kQ: return rows(w->qkv, ModuleKind::kQ);
    case Slot::kK: return rows(w->qkv, ModuleKind::kK);
    case Slot::kV: return rows(w->qkv, ModuleKind::kV);
    case Slot::kQBias: return rows(w->qkv_bias, ModuleKind::kQ);
    case Slot::kKBias: return rows(w->qkv_bias, ModuleKind::kK);
    case Slot::kVBias: return rows(w->qkv_bias, ModuleKind::kV);
    // NeoX rows are [head][q|k|v][D]; storage is [q|k|v][head][D]: a permuted view.
    case Slot::kQkv:
      return interleaved ? w->qkv.view({3, H, D, c.hidden_size}).permute({1, 0, 2, 3}) : tr(w->qkv);
    case Slot::kQkvBias:
      return interleaved ? w->qkv_bias.view({3, H, D}).permute({1, 0, 2}) : w->qkv_bias;
    case Slot::kO: return tr(w->o);
    case Slot::kOBias: return w->o_bias;
    case Slot::kGate: return tr(rows(w->gate_up, ModuleKind::kGate));
    case Slot::kGateBias: return rows(w->gate_up_bias, ModuleKind::kGate);
    case Slot::kUp: return tr(rows(w->gate_up, ModuleKind::kUp));
    case Slot::kUpBias: return rows(w->gate_up_bias, ModuleKind::kUp);
    case Slot::kDown: return tr(w->down);
    case Slot::kDownBias: return w->down_bias;
  }
  throw std::logic_error("SlotView: unknown slot");
}

// RoPE frequencies as HF's rope_init_fn computes them (modeling_rope_utils.py), in float64.
void Model::InitRope() {
  const auto& c = config_;
  const int64_t dim = c.rope_dim();
  if (dim == 0) return;
  const double theta = c.rope_theta, factor = c.rope_scaling_factor;
  auto exponent = torch::arange(0, dim, 2, torch::kFloat64).div(static_cast<double>(dim));
  auto inv = torch::pow(theta, exponent).reciprocal();
  const std::string& type = c.rope_scaling_type;
  if (type == "linear") {
    inv = inv / factor;
  } else if (type == "llama3") {
    const double old_ctx = static_cast<double>(c.rope_original_max_position);
    const double low_wl = old_ctx / c.rope_low_freq_factor;
    const double high_wl = old_ctx / c.rope_high_freq_factor;
    auto wl = 2 * M_PI / inv;
    auto scaled = torch::where(wl > low_wl, inv / factor, inv);
    auto smooth = (old_ctx / wl - c.rope_low_freq_factor) /
                  (c.rope_high_freq_factor - c.rope_low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    auto medium = (wl >= high_wl).logical_and(wl <= low_wl);
    inv = torch::where(medium, smoothed, scaled);
  } else if (type == "yarn") {
    const double orig =
        static_cast<double>(c.rope_original_max_position > 0 ? c.rope_original_max_position
                                                             : c.max_position_embeddings);
    const auto mscale = [&](double m) {
      return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1;
    };
    rope_attention_ = c.rope_attention_factor > 0 ? c.rope_attention_factor
                      : (c.rope_mscale != 0 && c.rope_mscale_all_dim != 0)
                          ? mscale(c.rope_mscale) / mscale(c.rope_mscale_all_dim)
                          : mscale(1.0);
    const auto correction_dim = [&](double rotations) {
      return static_cast<double>(dim) * std::log(orig / (rotations * 2 * M_PI)) /
             (2 * std::log(theta));
    };
    double low = correction_dim(c.rope_beta_fast), high = correction_dim(c.rope_beta_slow);
    if (c.rope_truncate) {
      low = std::floor(low);
      high = std::ceil(high);
    }
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(dim - 1));
    if (low == high) high += 0.001;
    auto ramp = ((torch::arange(dim / 2, torch::kFloat64) - low) / (high - low)).clamp(0, 1);
    auto extrapolation = 1 - ramp;
    inv = (inv / factor) * (1 - extrapolation) + inv * extrapolation;
  }
  // "dynamic" (NTK) changes the base only for rows longer than max_position_embeddings
  // (HF's dynamic_rope_update), which Forward refuses: the default frequencies are exact.
  inv_freq_ = inv;
}

std::pair<torch::Tensor, torch::Tensor> Model::RopeTables(int64_t T) const {
  std::lock_guard<std::mutex> lock(cache_->mu);
  auto& tables = cache_->rope[T];
  if (!tables.first.defined()) {
    // HF's rotate_half folded in: rope(x) = x·cos + roll(x, R/2)·sin_signed.
    const int64_t half = inv_freq_.size(0);
    auto freqs = torch::outer(torch::arange(T, torch::kFloat64), inv_freq_);
    auto emb = torch::cat({freqs, freqs}, -1);
    auto sign =
        torch::cat({-torch::ones({half}, torch::kFloat64), torch::ones({half}, torch::kFloat64)});
    // float32 in every compute dtype: Forward rotates in float32 (see its rope()).
    tables.first = (emb.cos() * rope_attention_).to(torch::kFloat32).to(device_);
    tables.second = (emb.sin() * sign * rope_attention_).to(torch::kFloat32).to(device_);
  }
  return tables;
}

torch::Tensor Model::AttentionMask(int64_t H, int64_t T, int64_t window) const {
  std::lock_guard<std::mutex> lock(cache_->mu);
  auto& m = cache_->masks[{H, T, window}];
  if (!m.defined()) {
    // Row i may see column j of the same head at an earlier (or the same) position, and on a
    // sliding layer only the `window` latest of those.
    auto idx = torch::arange(H * T, torch::kLong);
    auto head = idx.div(T, "floor"), pos = idx.remainder(T);
    auto qpos = pos.unsqueeze(1), kpos = pos.unsqueeze(0);
    auto allowed = head.unsqueeze(1).eq(head.unsqueeze(0)).logical_and(kpos.le(qpos));
    if (window > 0) allowed = allowed.logical_and((qpos - kpos).lt(window));
    m = torch::where(allowed, torch::zeros({}),
                     torch::full({}, -std::numeric_limits<float>::infinity()))
            .to(device_, dtype_);
  }
  return m;
}

Model Model::Clone() const {
  Model m(config_, device_, dtype_);
  torch::NoGradGuard no_grad;
  m.params_.flat().copy_(params_.flat());
  for (const auto& [name, t] : file_backed_) m.params_.Get(name).copy_(t);
  return m;
}

FlatParams& Model::params() {
  if (file_backed_.empty()) return params_;
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : file_backed_) params_.Get(name).copy_(t);
  file_backed_.clear();
  BindViews();
  return params_;
}

const FlatParams& Model::params() const {
  if (!file_backed_.empty())
    throw std::logic_error(
        "Model::params() const: weights are views of the checkpoint file; call the non-const "
        "params() to copy them into the model's storage first");
  return params_;
}

int64_t Model::FileBackedBytes() const {
  int64_t bytes = 0;
  for (const auto& [name, t] : file_backed_) bytes += t.numel() * t.element_size();
  return bytes;
}

std::vector<std::string> Model::WeightNames() const { return file_order_; }

bool Model::HasWeight(const std::string& name) const { return named_.count(name) != 0; }

torch::Tensor Model::Weight(const std::string& name) const {
  const auto it = named_.find(name);
  if (it == named_.end())
    throw std::runtime_error(fmt::format("model has no weight '{}' ({} layers, {}{})", name,
                                         config_.num_hidden_layers,
                                         config_.gated_mlp ? "gated MLP" : "plain MLP",
                                         config_.tie_word_embeddings ? ", tied head" : ""));
  return it->second;
}

LinearGroup Model::GroupOf(ModuleKind m) {
  switch (m) {
    case ModuleKind::kQ:
    case ModuleKind::kK:
    case ModuleKind::kV: return LinearGroup::kQkv;
    case ModuleKind::kO: return LinearGroup::kO;
    case ModuleKind::kGate:
    case ModuleKind::kUp: return LinearGroup::kGateUp;
    case ModuleKind::kDown: return LinearGroup::kDown;
  }
  return LinearGroup::kO;
}

std::pair<int64_t, int64_t> Model::GroupRows(ModuleKind m) const {
  const int64_t q = config_.q_dim(), kv = config_.kv_dim(), dm = config_.intermediate_size;
  switch (m) {
    case ModuleKind::kQ: return {0, q};
    case ModuleKind::kK: return {q, q + kv};
    case ModuleKind::kV: return {q + kv, q + 2 * kv};
    case ModuleKind::kO: return {0, config_.hidden_size};
    case ModuleKind::kGate:
      if (!config_.gated_mlp) throw std::runtime_error("model has no gate_proj (plain MLP)");
      return {0, dm};
    case ModuleKind::kUp:
      return config_.gated_mlp ? std::pair{dm, 2 * dm} : std::pair{int64_t{0}, dm};
    case ModuleKind::kDown: return {0, config_.hidden_size};
  }
  return {0, 0};
}

torch::Tensor Model::GroupWeight(int64_t layer, LinearGroup g) const {
  const auto& lw = layers_.at(static_cast<size_t>(layer));
  switch (g) {
    case LinearGroup::kQkv: return lw.qkv;
    case LinearGroup::kO: return lw.o;
    case LinearGroup::kGateUp: return lw.gate_up;
    case LinearGroup::kDown: return lw.down;
  }
  return {};
}

torch::Tensor Model::GroupBias(int64_t layer, LinearGroup g) const {
  const auto& lw = layers_.at(static_cast<size_t>(layer));
  switch (g) {
    case LinearGroup::kQkv: return lw.qkv_bias;
    case LinearGroup::kO: return lw.o_bias;
    case LinearGroup::kGateUp: return lw.gate_up_bias;
    case LinearGroup::kDown: return lw.down_bias;
  }
  return {};
}

void Model::InitRandom(uint64_t seed, double std) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& name : file_order_) {
    auto w = named_.at(name);
    if (norm_names_.count(name)) {
      w.fill_(config_.norm == ModelConfig::Norm::kRmsPlusOne ? 0.0 : 1.0);
    } else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      w.zero_();
    } else {
      w.copy_(torch::empty(w.sizes(), torch::kFloat32).normal_(0.0, std, gen));
    }
  }
}

torch::Tensor Model::Norm(const torch::Tensor& x, const torch::Tensor& w,
                          const torch::Tensor& b) const {
  switch (config_.norm) {
    case ModelConfig::Norm::kLayerNorm:  // in float32, cast back (nn.LayerNorm's bf16 kernel)
      return torch::layer_norm(x.to(torch::kFloat32), {x.size(-1)}, w.to(torch::kFloat32),
                               b.defined() ? b.to(torch::kFloat32) : b, config_.rms_norm_eps)
          .to(x.scalar_type());
    case ModelConfig::Norm::kRmsPlusOne: return RmsNorm(x, w, config_.rms_norm_eps, true);
    case ModelConfig::Norm::kRms: break;
  }
  return RmsNorm(x, w, config_.rms_norm_eps);
}

// ---- Forward ---------------------------------------------------------------------------------

// One forward pass for every family (the switches are ModelConfig's, see model.h): the batch's
// shapes, RoPE tables and options, and the steps of a layer. Each step takes and returns the
// very tensors the math uses, so the seven capture and hook points (Visit) see, and may
// replace, exactly those; Layer() states their order (resid_pre, attn_pattern, attn_z,
// resid_mid, mlp_pre, mlp_post, resid_post).
struct Model::Pass {
  Pass(const Model& model, const torch::Tensor& tokens_in, const ForwardOptions& options);

  torch::Tensor Hidden() const;                 // the final norm's output [N, d], N = B·T
  torch::Tensor Logits(torch::Tensor x) const;  // float32 [B, T or P, V]

  torch::Tensor Embed() const;
  torch::Tensor Layer(int64_t l, torch::Tensor h) const;
  // [B, T, H, D] attention·V of x (head_scale applied), before o_proj.
  torch::Tensor Attention(int64_t l, const torch::Tensor& x) const;
  std::array<torch::Tensor, 3> QkvHeads(int64_t l, const torch::Tensor& x) const;  // [B,H,T,D]
  torch::Tensor Heads(const torch::Tensor& t, int64_t n) const;  // [B,T,n,D] -> [B,H,T,D]
  torch::Tensor Rope(const torch::Tensor& x) const;
  torch::Tensor Rotate(const torch::Tensor& x) const;
  // The pattern visit of folded or per-head probabilities; the hook's replacement written back.
  torch::Tensor VisitPattern(int64_t l, torch::Tensor probs, bool fold) const;
  torch::Tensor MlpHidden(int64_t l, const torch::Tensor& x) const;  // down_proj's input [N, dm]
  torch::Tensor Linear(int64_t l, LinearGroup g, const torch::Tensor& x, const torch::Tensor& w,
                       const torch::Tensor& b, const torch::Tensor& res) const;
  // Reports a [B, T, ...] view of an activation to the hook and capture; returns the tensor to
  // go on with (the hook may replace it).
  torch::Tensor Visit(CapturePoint p, int64_t l, torch::Tensor t) const;
  torch::Tensor VisitRows(CapturePoint p, int64_t l, const torch::Tensor& t) const;  // [N, n]

  const Model& m;
  const ModelConfig& c;
  const ForwardOptions& o;
  torch::Tensor tokens;  // int64 [B, T] on the model's device
  int64_t B, T, N, H, KV, D, d, dm, R;
  double scale;
  bool observe;
  torch::Tensor cos, sin;  // [1, T, 1, R] float32
};

Model::Pass::Pass(const Model& model, const torch::Tensor& tokens_in, const ForwardOptions& options)
    : m(model), c(model.config_), o(options) {
  TORCH_CHECK(tokens_in.dim() == 2, "Model::Forward: tokens must be [B, T], got ",
              tokens_in.sizes());
  B = tokens_in.size(0);
  T = tokens_in.size(1);
  N = B * T;
  TORCH_CHECK(T >= 1 && T <= c.max_position_embeddings, "Model::Forward: sequence length ", T,
              " outside [1, ", c.max_position_embeddings, "]");
  H = c.num_attention_heads;
  KV = c.num_key_value_heads;
  D = c.head_dim;
  d = c.hidden_size;
  dm = c.intermediate_size;
  R = c.rope_dim();
  tokens = tokens_in.to(m.device_, torch::kLong);
  if (o.head_scale.defined())
    TORCH_CHECK(o.head_scale.dim() == 2 && o.head_scale.size(0) == c.num_hidden_layers &&
                    o.head_scale.size(1) == H,
                "Model::Forward: head_scale must be [n_layers, n_heads] = [", c.num_hidden_layers,
                ", ", H, "], got ", o.head_scale.sizes());
  observe = o.hook != nullptr || o.capture != nullptr;
  scale = c.attention_scale > 0 ? c.attention_scale : 1.0 / std::sqrt(double(D));
  if (R > 0) {
    auto tables = m.RopeTables(T);
    cos = tables.first.view({1, T, 1, R});
    sin = tables.second.view({1, T, 1, R});
  }
}

torch::Tensor Model::Pass::Visit(CapturePoint p, int64_t l, torch::Tensor t) const {
  if (o.hook) (*o.hook)(p, l, t);
  if (o.capture && o.capture->Wants(p, l)) o.capture->Put(p, l, t);
  return t;
}

torch::Tensor Model::Pass::VisitRows(CapturePoint p, int64_t l, const torch::Tensor& t) const {
  const int64_t n = t.size(1);
  return Visit(p, l, t.view({B, T, n})).reshape({N, n});
}

torch::Tensor Model::Pass::Linear(int64_t l, LinearGroup g, const torch::Tensor& x,
                                  const torch::Tensor& w, const torch::Tensor& b,
                                  const torch::Tensor& res) const {
  return o.adapter ? o.adapter->Linear(l, g, x, w, b, res) : BaseLinear(x, w, b, res);
}

torch::Tensor Model::Pass::Embed() const {
  auto h = torch::embedding(m.embed_, tokens);
  if (c.learned_positions) h = h + m.pos_embed_.narrow(0, 0, T).unsqueeze(0);
  // Gemma: HF multiplies by the scale as a tensor of the compute dtype (rounded first).
  if (c.embedding_scale != 1.0)
    h = h * torch::scalar_tensor(c.embedding_scale, m.dtype_).item<double>();
  return h.reshape({N, d});
}

torch::Tensor Model::Pass::Hidden() const {
  auto h = Embed();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) h = Layer(l, std::move(h));
  return m.Norm(h, m.norm_, m.norm_bias_);
}

torch::Tensor Model::Pass::Logits(torch::Tensor x) const {
  int64_t P = T;
  if (o.logit_positions.defined()) {
    const auto pos = o.logit_positions.to(m.device_, torch::kLong);
    P = pos.numel();
    x = x.view({B, T, d}).index_select(1, pos).reshape({B * P, d});
  }
  auto logits = x.mm(m.head_.t()).view({B, P, c.vocab_size}).to(torch::kFloat32);
  if (c.final_logit_softcap > 0)
    logits = torch::tanh(logits / c.final_logit_softcap) * c.final_logit_softcap;
  return logits;
}

torch::Tensor Model::Pass::Layer(int64_t l, torch::Tensor h) const {
  const LayerWeights& w = m.layers_[static_cast<size_t>(l)];
  if (observe) h = VisitRows(CapturePoint::kResidPre, l, h);
  const torch::Tensor h_in = h;  // the MLP's input under a parallel residual
  const auto z = Attention(l, m.Norm(h, w.ln1, w.ln1_bias)).reshape({N, H * D});
  if (c.sandwich_norm) {
    h = h + m.Norm(Linear(l, LinearGroup::kO, z, w.o, w.o_bias, {}), w.post_attn, {});
  } else {
    h = Linear(l, LinearGroup::kO, z, w.o, w.o_bias, h);
  }
  if (observe) h = VisitRows(CapturePoint::kResidMid, l, h);
  const auto post = MlpHidden(l, m.Norm(c.parallel_residual ? h_in : h, w.ln2, w.ln2_bias));
  if (c.sandwich_norm) {
    h = h + m.Norm(Linear(l, LinearGroup::kDown, post, w.down, w.down_bias, {}), w.post_mlp, {});
  } else {
    h = Linear(l, LinearGroup::kDown, post, w.down, w.down_bias, h);
  }
  if (observe) h = VisitRows(CapturePoint::kResidPost, l, h);
  return h;
}

// RoPE on the first R dims of each head (all of them unless partial, as GPT-NeoX), computed in
// float32 and rounded once to the compute dtype (HF rounds q·cos, rotate_half(q)·sin and their
// sum separately in bf16; one rounding is as precise or more).
torch::Tensor Model::Pass::Rotate(const torch::Tensor& x) const {
  const auto xf = x.to(torch::kFloat32);
  return torch::addcmul(xf * cos, torch::roll(xf, R / 2, -1), sin).to(x.scalar_type());
}

torch::Tensor Model::Pass::Rope(const torch::Tensor& x) const {
  if (R == 0) return x;
  if (R == D) return Rotate(x);
  auto parts = x.split_with_sizes({R, D - R}, -1);
  return torch::cat({Rotate(parts[0]), parts[1]}, -1);
}

torch::Tensor Model::Pass::Heads(const torch::Tensor& t, int64_t n) const {
  auto tt = t.permute({0, 2, 1, 3});
  if (n < H) tt = tt.unsqueeze(2).expand({B, n, H / n, T, D}).reshape({B, H, T, D});
  return tt.contiguous();  // reshape may return a stride-0 view (n = 1)
}

std::array<torch::Tensor, 3> Model::Pass::QkvHeads(int64_t l, const torch::Tensor& x) const {
  const LayerWeights& w = m.layers_[static_cast<size_t>(l)];
  auto qkv = Linear(l, LinearGroup::kQkv, x, w.qkv, w.qkv_bias, {}).view({B, T, H + 2 * KV, D});
  // Splits (not narrows): their backward is one cat, not a zero-filled copy per slice.
  torch::Tensor q, k, v;
  if (c.qk_norm) {
    auto parts = qkv.split_with_sizes({H, KV, KV}, 2);
    q = Rope(RmsNorm(parts[0], w.q_norm, c.rms_norm_eps));
    k = Rope(RmsNorm(parts[1], w.k_norm, c.rms_norm_eps));
    v = parts[2];
  } else {
    auto parts = qkv.split_with_sizes({H + KV, KV}, 2);
    auto qk = Rope(parts[0]).split_with_sizes({H, KV}, 2);
    q = qk[0];
    k = qk[1];
    v = parts[1];
  }
  return {Heads(q, H), Heads(k, KV), Heads(v, KV)};
}

// Small heads: one [H·T, H·T] product per row with a block-diagonal causal mask instead of B·H
// tiny GEMMs (whose per-matrix overhead dominates at T·H <= kFoldRows). The masked cross-head
// scores get probability exactly 0, so the result is the per-head attention.
torch::Tensor Model::Pass::Attention(int64_t l, const torch::Tensor& x) const {
  const auto [q, k, v] = QkvHeads(l, x);
  const bool fold = H > 1 && H * T <= kFoldRows;
  const int64_t bb = fold ? B : B * H, rows = fold ? H * T : T;
  const int64_t window = c.IsSliding(l) && c.sliding_window < T ? c.sliding_window : 0;
  const auto mask = m.AttentionMask(fold ? H : 1, T, window);
  const auto qs = q.view({bb, rows, D}), ks = k.view({bb, rows, D}).transpose(1, 2);
  torch::Tensor scores;
  if (c.attn_logit_softcap > 0) {  // Gemma2: cap·tanh(scores/cap), then the mask
    const double cap = c.attn_logit_softcap;
    scores = torch::tanh(torch::bmm(qs, ks) * (scale / cap)) * cap + mask;
  } else {
    scores = torch::baddbmm(mask, qs, ks, 1.0, scale);
  }
  auto probs = Softmax(scores);
  if (observe) probs = VisitPattern(l, probs, fold);
  auto z = torch::bmm(probs, v.view({bb, rows, D})).view({B, H, T, D});
  if (o.head_scale.defined())
    z = z * o.head_scale[l].to(z.device(), z.scalar_type()).view({1, H, 1, 1});
  auto zt = z.transpose(1, 2);  // [B, T, H, D]
  if (observe) zt = Visit(CapturePoint::kAttnZ, l, zt);
  return zt;
}

torch::Tensor Model::Pass::VisitPattern(int64_t l, torch::Tensor probs, bool fold) const {
  // The per-head pattern: the diagonal blocks (a view when folded).
  const auto pattern = fold ? probs.view({B, H, T, H, T}).diagonal(0, 1, 3).permute({0, 3, 1, 2})
                            : probs.view({B, H, T, T});
  const auto seen = Visit(CapturePoint::kAttnPattern, l, pattern);
  if (seen.is_same(pattern)) return probs;
  if (!fold) return seen.reshape(probs.sizes());  // the hook replaced it
  auto full = torch::zeros({B, H, T, H, T}, probs.options());
  full.diagonal(0, 1, 3).copy_(seen.permute({0, 2, 3, 1}));
  return full.view(probs.sizes());
}

torch::Tensor Model::Pass::MlpHidden(int64_t l, const torch::Tensor& x) const {
  const LayerWeights& w = m.layers_[static_cast<size_t>(l)];
  auto gu = Linear(l, LinearGroup::kGateUp, x, w.gate_up, w.gate_up_bias, {});
  torch::Tensor pre, post;
  if (c.gated_mlp) {
    auto parts = gu.split_with_sizes({dm, dm}, 1);
    pre = parts[0];
    if (observe) pre = VisitRows(CapturePoint::kMlpPre, l, pre);
    post = Activation(pre, c.hidden_act) * parts[1];
  } else {
    pre = gu;
    if (observe) pre = VisitRows(CapturePoint::kMlpPre, l, pre);
    post = Activation(pre, c.hidden_act);
  }
  if (observe) post = VisitRows(CapturePoint::kMlpPost, l, post);
  return post;
}

torch::Tensor Model::Forward(const torch::Tensor& tokens, const ForwardOptions& o) const {
  const Pass pass(*this, tokens, o);
  return pass.Logits(pass.Hidden());
}

torch::Tensor Model::ForwardNextTokenLoss(const torch::Tensor& tokens, const ForwardOptions& o,
                                          const torch::Tensor& loss_mask) const {
  TORCH_CHECK(!o.logit_positions.defined(),
              "Model::ForwardNextTokenLoss: the loss needs logits at every position; "
              "logit_positions must be unset");
  if (config_.final_logit_softcap > 0) return NextTokenLoss(Forward(tokens, o), tokens, loss_mask);
  const Pass pass(*this, tokens, o);
  const auto x = pass.Hidden();
  const bool grad = torch::GradMode::is_enabled();
  return HeadCrossEntropy::apply(x, head_, NextTokenTargets(pass.tokens, loss_mask).view({-1}),
                                 grad && x.requires_grad(), grad && head_.requires_grad());
}

// ---- Loading and saving ----------------------------------------------------------------------

namespace {

// Which of a model's storage slots (disjoint memory: FlatParams slots or file-backed views) holds
// a named view: (the slot's index in `slots`, the view's byte offset in it).
class SlotFinder {
 public:
  explicit SlotFinder(const std::vector<torch::Tensor>& slots) {
    for (size_t i = 0; i < slots.size(); ++i) {
      const char* p = static_cast<const char*>(slots[i].data_ptr());
      start_[p] = {i, p + slots[i].numel() * slots[i].element_size()};
    }
  }
  std::pair<size_t, int64_t> Find(const torch::Tensor& view) const {
    const char* at = static_cast<const char*>(view.data_ptr());
    auto it = start_.upper_bound(at);
    TORCH_CHECK(it != start_.begin() && at < std::prev(it)->second.second,
                "a weight view lies in no storage slot");
    --it;
    return {it->second.first, at - it->first};
  }

 private:
  std::map<const char*, std::pair<size_t, const char*>> start_;  // start -> (index, end)
};

// The safetensors files of a checkpoint: one file, or every shard an index lists.
struct CheckpointFiles {
  std::map<std::string, SafetensorsFile> opened;  // path -> file
  std::map<std::string, std::string> where;       // tensor name as stored -> path
};

// SEEDGRID_MODEL_LOAD=copy: every weight copied into the model's storage, none left viewing the
// file (for a checkpoint that may be rewritten in place while shards run). Unset or "map": the
// default. Anything else is an error naming the variable.
bool LoadCopiesRequested() {
  const char* v = std::getenv("SEEDGRID_MODEL_LOAD");
  if (v == nullptr || *v == '\0' || std::string_view(v) == "map") return false;
  if (std::string_view(v) == "copy") return true;
  throw std::runtime_error(
      fmt::format("SEEDGRID_MODEL_LOAD='{}': expected 'map' (the default) or 'copy'", v));
}

CheckpointFiles OpenCheckpointFiles(const std::string& path) {
  CheckpointFiles out;
  std::vector<std::string> files = {path};
  const bool index = path.size() > 11 && path.compare(path.size() - 11, 11, ".index.json") == 0;
  if (index) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open safetensors index");
    Json j;
    try {
      j = Json::parse(in);
    } catch (const Json::exception& e) {
      throw std::runtime_error(path + ": not valid JSON: " + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw std::runtime_error(path + ": no weight_map object");
    files.clear();
    const fs::path dir = fs::path(path).parent_path();
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw std::runtime_error(path + ": weight_map['" + name + "'] is not a string");
      const std::string full = (dir / file.get<std::string>()).string();
      out.where[name] = full;
      if (std::find(files.begin(), files.end(), full) == files.end()) files.push_back(full);
    }
  }
  for (const auto& f : files) out.opened.emplace(f, SafetensorsFile(f));
  if (!index)
    for (const auto& name : out.opened.at(path).Names()) out.where[name] = path;
  return out;
}

}  // namespace

// A checkpoint tensor found and checked: the file holding it and its view there.
struct Model::StoredTensor {
  const SafetensorsFile* file = nullptr;
  const TensorView* view = nullptr;
};

void Model::LoadWeights(const std::string& path) {
  const CheckpointFiles files = OpenCheckpointFiles(path);
  // GPT-2 files saved by GPT2LMHeadModel prefix names with "transformer.".
  std::vector<std::string> stored;
  for (const auto& [name, file] : files.where) stored.push_back(name);
  const std::string prefix = CheckpointNamePrefix(config_, stored);
  std::map<std::string, std::string> stored_name;  // our name -> the file's
  for (const auto& name : stored)
    stored_name[!prefix.empty() && name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name] =
        name;

  std::vector<std::string> problems;
  for (const auto& [ours, theirs] : stored_name) {
    if (file_shape_.count(ours) || IsIgnoredCheckpointTensor(config_, theirs)) continue;
    problems.push_back(fmt::format("{}: unexpected tensor '{}' (not in a {} model of this config)",
                                   files.where.at(theirs), theirs, config_.model_type));
  }
  std::map<std::string, StoredTensor> found;  // our name -> where it is
  for (const auto& name : file_order_) {
    const auto it = stored_name.find(name);
    if (it == stored_name.end()) {
      problems.push_back(fmt::format("{}: missing tensor '{}'", path, prefix + name));
      continue;
    }
    const std::string& file_path = files.where.at(it->second);
    const auto& file = files.opened.at(file_path);
    if (!file.Has(it->second)) {
      problems.push_back(
          fmt::format("{}: missing tensor '{}' (listed in {})", file_path, it->second, path));
      continue;
    }
    const TensorView& view = file.Get(it->second);
    const auto& shape = file_shape_.at(name);
    if (shape != view.shape) {
      problems.push_back(fmt::format("{}: tensor '{}' has shape [{}], the config needs [{}]",
                                     file_path, it->second, fmt::join(view.shape, ", "),
                                     fmt::join(shape, ", ")));
      continue;
    }
    try {
      StoredScalarType(view, file_path);  // a floating-point dtype, or the problem
    } catch (const SafetensorsError& e) {
      problems.push_back(e.what());
      continue;
    }
    found[name] = {&file, &view};
  }
  if (!problems.empty()) throw std::runtime_error("cannot load weights: " + Join(problems, "; "));

  torch::NoGradGuard no_grad;
  if (!file_backed_.empty()) {  // loaded before: every name a view into params_ again
    file_backed_.clear();
    BindViews();
  }
  // Views of the file only on the CPU, never under a trainable flat buffer (its gradients and
  // optimiser see params_ only), and not when the user asks for copies.
  std::set<std::string> viewed;  // checkpoint names whose slot is now a view of the file
  if (device_.is_cpu() && !params_.grad_flat().defined() && !LoadCopiesRequested())
    viewed = ViewFilesWhereStoredAsComputed(found);
  if (!file_backed_.empty()) BindViews();
  torch::Tensor staging;  // CopyIntoStorage's buffer, shared by every tensor
  for (const auto& name : file_order_) {
    if (viewed.count(name)) continue;
    const StoredTensor& st = found.at(name);
    try {
      CopyIntoStorage(*st.file, *st.view, named_.at(name), staging);
    } catch (const SafetensorsError& e) {
      problems.push_back(e.what());
    }
  }
  if (!problems.empty()) throw std::runtime_error("cannot load weights: " + Join(problems, "; "));
}

// A storage slot (a fused q|k|v, gate|up, or any unfused weight) can be the file's own bytes
// when the file holds it exactly as the model computes with it: stored dtype = compute dtype, the
// slot's checkpoint tensors in the slot's own layout (not GPT-2's transposed Conv1D or NeoX's
// interleaving), all in one file, back to back in the slot's row order, aligned to the element
// size. That is every slot of a checkpoint Model::Save wrote, and every slot but q|k|v of one HF
// saved (safetensors writes same-dtype tensors sorted by name: gate_proj and up_proj are
// neighbours, q_proj and k_proj are not). Such a slot becomes a tensor over the file's private
// mapping (SafetensorsFile::mapping: the page cache's pages, a write copies the page); its
// FlatParams slot is left untouched, so it costs no memory. Returns the checkpoint names those
// views hold; the caller copies the others.
std::set<std::string> Model::ViewFilesWhereStoredAsComputed(
    const std::map<std::string, StoredTensor>& found) {
  const StDType want = dtype_ == torch::kBFloat16 ? StDType::kBF16 : StDType::kF32;
  const auto elem = static_cast<int64_t>(c10::elementSize(dtype_));
  const SlotFinder slots(SlotStorage());  // all in params_ here (BindViews, no file yet)
  // Slot -> its checkpoint tensors that could be views: (element offset in the slot, name).
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> pieces;
  for (const auto& [name, st] : found) {
    const torch::Tensor& v = named_.at(name);
    if (st.view->dtype != want || !v.is_contiguous() || v.numel() == 0) continue;
    const auto [index, byte] = slots.Find(v);
    pieces[params_.names()[index]].emplace_back(byte / elem, name);
  }
  std::set<std::string> viewed;
  for (auto& [slot, list] : pieces) {
    std::sort(list.begin(), list.end());
    const StoredTensor& first = found.at(list.front().second);
    int64_t covered = 0;  // elements of the slot the pieces so far fill, in order
    bool in_place =
        reinterpret_cast<uintptr_t>(first.view->data) % static_cast<uintptr_t>(elem) == 0;
    for (const auto& [offset, name] : list) {
      const StoredTensor& st = found.at(name);
      in_place = in_place && st.file == first.file && offset == covered &&
                 st.view->data == first.view->data + offset * elem;
      covered += st.view->numel();
    }
    const torch::Tensor& own = params_.Get(slot);
    if (!in_place || covered != own.numel()) continue;
    std::shared_ptr<uint8_t> keep = first.file->mapping();
    file_backed_[slot] = torch::from_blob(
        first.file->MakeWritable(*first.view, static_cast<size_t>(own.numel() * elem)), own.sizes(),
        [keep](void*) mutable { keep.reset(); },
        torch::TensorOptions().dtype(dtype_).device(torch::kCPU));
    for (const auto& [offset, name] : list) viewed.insert(name);
  }
  return viewed;
}

Model Model::Load(const std::string& dir, torch::Device device, torch::ScalarType dtype) {
  const fs::path p(dir);
  const auto config = ModelConfig::FromHfFile((p / "config.json").string());
  Model model(config, device, dtype);
  const fs::path single = p / "model.safetensors";
  const fs::path index = p / "model.safetensors.index.json";
  if (fs::exists(single)) {
    model.LoadWeights(single.string());
  } else if (fs::exists(index)) {
    model.LoadWeights(index.string());
  } else {
    throw std::runtime_error(
        fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir));
  }
  return model;
}

void Model::Save(const std::string& dir, const Json& extra_config) const {
  fs::create_directories(dir);
  // Tensors in storage order (slot by slot, rows in order), not file_order_: then q|k|v and
  // gate|up lie back to back in the file, and a load in this dtype views every slot in place.
  const SlotFinder slots(SlotStorage());
  std::vector<std::pair<std::pair<size_t, int64_t>, std::string>> order;  // (slot, byte), name
  for (const auto& name : file_order_) order.push_back({slots.Find(named_.at(name)), name});
  std::sort(order.begin(), order.end());
  std::vector<torch::Tensor> host;
  std::vector<TensorToWrite> tensors;
  for (const auto& [key, name] : order) {
    auto t = named_.at(name).detach();
    if (!t.is_cpu()) t = t.to(torch::kCPU);
    t = t.contiguous().view(file_shape_.at(name));  // the file's layout
    host.push_back(t);
    tensors.push_back({name, dtype_ == torch::kBFloat16 ? StDType::kBF16 : StDType::kF32,
                       file_shape_.at(name), t.data_ptr()});
  }
  WriteSafetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  Json cfg = config_.ToHfJson();
  for (const auto& [k, v] : extra_config.items()) cfg[k] = v;
  // Checked to the last close, the errno in the message, no temp file left on failure.
  WriteFileAtomically((fs::path(dir) / "config.json").string(), cfg.dump(2) + "\n");
}

torch::Tensor TokensTensor(const std::vector<int32_t>& tokens, int64_t rows, int64_t seq_len,
                           torch::Device device) {
  TORCH_CHECK(static_cast<int64_t>(tokens.size()) == rows * seq_len,
              "TokensTensor: ", tokens.size(), " tokens for [", rows, ", ", seq_len, "]");
  return torch::from_blob(const_cast<int32_t*>(tokens.data()), {rows, seq_len}, torch::kInt32)
      .to(device, torch::kLong);
}

torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& tokens,
                            const torch::Tensor& loss_mask) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  return torch::nn::functional::cross_entropy(
      logits.reshape({B * T, V}), NextTokenTargets(tokens, loss_mask).view({B * T}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreTarget));
}

// ---- WeightEdit ------------------------------------------------------------------------------

WeightEdit::WeightEdit(Model& model, std::map<std::string, torch::Tensor> deltas) : model_(model) {
  std::vector<std::string> problems;
  for (const auto& [name, delta] : deltas) {
    if (!model.HasWeight(name)) {
      problems.push_back(fmt::format("no weight '{}'", name));
      continue;
    }
    auto w = model.Weight(name);
    if (!delta.defined() || delta.sizes() != w.sizes()) {
      problems.push_back(fmt::format(
          "'{}': delta shape [{}] != weight shape [{}]", name,
          delta.defined() ? fmt::format("{}", fmt::join(delta.sizes(), ", ")) : "undefined",
          fmt::join(w.sizes(), ", ")));
      continue;
    }
  }
  if (!problems.empty()) throw std::runtime_error("WeightEdit: " + Join(problems, "; "));
  torch::NoGradGuard no_grad;
  for (auto& [name, delta] : deltas) {
    auto w = model.Weight(name);
    saved_.emplace_back(w, w.detach().clone());
    deltas_.push_back(delta.detach().to(w.device(), torch::kFloat32).contiguous());
  }
}

WeightEdit::~WeightEdit() {
  try {
    Restore();
  } catch (...) {  // never throw from a destructor
  }
}

void WeightEdit::SetAlpha(double alpha) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < saved_.size(); ++i) {
    auto& [live, orig] = saved_[i];
    if (alpha == 0.0) {
      live.copy_(orig);
    } else {
      at::add_out(live, orig, deltas_[i], alpha);
    }
  }
}

void WeightEdit::Restore() { SetAlpha(0.0); }

}  // namespace seedgrid
