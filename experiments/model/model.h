// A decoder-only transformer whose weights carry Hugging Face names, so a real checkpoint of
// any family ModelConfig accepts (Llama, Mistral, Qwen2/3, Gemma/Gemma2, GPT-2, GPT-NeoX)
// loads by name. One forward pass serves every family through ModelConfig's switches: RMSNorm
// or LayerNorm, RoPE (full, partial, scaled) or learned positions, sequential or parallel
// residual, sandwich norms, soft-capping, sliding-window layers, gated or plain MLP.
//
// Why it looks the way it does:
//   * Every weight is a view into ONE flat buffer on the model's device, in the model's compute
//     dtype (float32 or bfloat16, see "Compute dtype" below). q/k/v rows are
//     adjacent (so `model.layers.N.self_attn.q_proj.weight` is a row slice of the fused qkv
//     matrix) and so are gate/up. Forward runs one GEMM per fused group, yet in-place edits of
//     a named weight (WeightEdit, ablation) are seen by the fused GEMM with no re-packing.
//   * Except after Load on the CPU: a slot (fused group or single weight) that the checkpoint
//     file holds exactly as the model computes with it (same dtype, same layout, its tensors back
//     to back) is a view of the file's private mapping instead of a copy in that buffer
//     (FileBackedBytes). A bf16 checkpoint loaded in bf16 is then mostly the page cache's own
//     pages: loading copies only what must change (q|k|v of an HF-saved file, conversions), and
//     the worker ranks of a node share one copy. An in-place edit copies the page it writes, for
//     this process only; the file never changes, but a file rewritten in place changes the
//     weights (SafetensorsFile::mapping; SEEDGRID_MODEL_LOAD=copy copies everything instead).
//     params() copies such slots into the buffer first, so training and optimisers still see
//     one buffer.
//   * Forward takes its extras through ForwardOptions: an adapter (LoRA/IA3 training), a
//     Capture (harvest), an ActivationHook (interventions) and a per-head multiplier (head
//     ablation). When an option is unset it costs one branch, never a copy.
//   * Small heads (H·T <= 128) are folded: one [H·T, H·T] attention product per row under a
//     block-diagonal causal mask instead of B·H tiny GEMMs, whose per-matrix overhead dominated
//     the demo model's step. Cross-head scores get probability exactly 0: same attention.
//   * Storage is one layout for every family (q|k|v rows, [out, in] weights); a checkpoint's
//     own layout (GPT-2's transposed Conv1D, NeoX's head-interleaved query_key_value) is a
//     strided view of it under the checkpoint's name, so loading, saving and WeightEdit see
//     the file's layout while the forward pass sees one.
//   * Rows are unpadded: attention is causal over the whole row. Tokens are int64 [B, T] with
//     T <= max_position_embeddings. Masks and RoPE tables are built per batch length T (and
//     cached per T), never for max_position_embeddings: memory follows the batch.
//
// Compute dtype (issue 16 point 3). A bfloat16 model stores its weights and computes its
// activations in bfloat16, following HF's modeling code for a bf16 checkpoint: RMSNorm and
// LayerNorm normalise in float32 and cast back (Llama-style norms scale after the cast, Gemma's
// (1 + w) before it), softmax runs in float32 and is cast back, RoPE tables are float32 cast to
// bf16, Gemma's embedding scale is rounded to bf16 first. Forward always returns float32 logits
// (the LM head's GEMM in bf16, then cast; Gemma2's final soft-cap in float32), so losses and
// metrics run in float32. Adapters keep their factors in float32 (adapters.h).
//
// Threading: a Model is not synchronised; one shard uses it at a time. Forward is const and
// may run concurrently with other Forwards only while no WeightEdit is live.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "experiments/model/config.h"

namespace seedgrid {

// ---- Module names -------------------------------------------------------------------------

// The linear modules adapters can target, by their short names in specs.
enum class ModuleKind : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr ModuleKind kAllModuleKinds[] = {
    ModuleKind::kQ,    ModuleKind::kK,  ModuleKind::kV,   ModuleKind::kO,
    ModuleKind::kGate, ModuleKind::kUp, ModuleKind::kDown};
std::string_view ToString(ModuleKind m);                           // "q" ... "down"
std::optional<ModuleKind> ParseModuleKind(std::string_view name);  // "q" or "q_proj"
// "model.layers.<layer>.self_attn.q_proj.weight", ".mlp.down_proj.weight", ...
std::string HfWeightName(int64_t layer, ModuleKind m);
// Inverse of HfWeightName; nullopt for names that are not a targetable linear weight.
std::optional<std::pair<int64_t, ModuleKind>> ParseHfWeightName(std::string_view name);

// Fused groups the forward pass multiplies in one GEMM. Rows of a group's weight, in order:
// kQkv: q | k | v;  kGateUp: gate | up (only up when the MLP is not gated);  kO;  kDown.
enum class LinearGroup : uint8_t { kQkv, kO, kGateUp, kDown };

// ---- Flat parameter storage ---------------------------------------------------------------

// Named tensors carved out of one contiguous buffer (64-byte aligned slots) of one dtype. The
// model keeps its weights here (in its compute dtype) and adapters their factors (always
// float32), so an optimiser, an all-reduce or a checkpoint sees one buffer instead of hundreds
// of small ones.
class FlatParams {
 public:
  FlatParams() = default;
  // Lays out `shapes` in order (zero-filled) on `device`. Large CPU buffers are fresh anonymous
  // mappings (zero until written, no memset), so loading into them writes each page once.
  FlatParams(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
             torch::Device device, torch::ScalarType dtype = torch::kFloat32);

  const torch::Tensor& flat() const { return flat_; }       // [numel incl. alignment padding]
  const torch::Tensor& Get(const std::string& name) const;  // throws naming it when unknown
  bool Has(const std::string& name) const { return index_.count(name) != 0; }
  const std::vector<std::string>& names() const { return names_; }  // layout order
  int64_t offset(const std::string& name) const;                    // element offset in flat()
  int64_t numel() const;  // sum of the named tensors' elements (no padding)

  // Marks every view as a trainable leaf and points its .grad() at the matching view of a
  // flat gradient buffer, so autograd accumulates straight into grad_flat() (zero it with
  // ZeroGrad() before each backward).
  void EnableGrad();
  const torch::Tensor& grad_flat() const { return grad_flat_; }
  void ZeroGrad();

 private:
  torch::Tensor flat_, grad_flat_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> index_;
  std::vector<torch::Tensor> views_;
  std::vector<int64_t> offsets_;
};

// Rows [begin, end) of a contiguous tensor as an independent alias of the same memory (not an
// autograd view, so it can be a trainable leaf or edited in place without touching the
// autograd history of `t`). Keeps `t`'s storage alive.
torch::Tensor AliasRows(const torch::Tensor& t, int64_t begin, int64_t end);

// ---- Capture and interventions ------------------------------------------------------------

// Named activation points. Shapes (B batch, T positions, H heads, D head_dim):
//   resid_pre   [B,T,d]      residual stream entering layer l
//   resid_mid   [B,T,d]      after the attention block's residual add
//   resid_post  [B,T,d]      leaving layer l (= resid_pre of l+1)
//   mlp_pre     [B,T,d_mlp]  pre-activation: gate_proj(x) when gated, up_proj(x) otherwise
//   mlp_post    [B,T,d_mlp]  the input of down_proj: act(gate)*up, or act(up)
//   attn_pattern[B,H,T,T]    softmax attention probabilities, [query, key]
//   attn_z      [B,T,H,D]    per-head attention·V before o_proj (after head_scale)
enum class CapturePoint : uint8_t {
  kResidPre,
  kResidMid,
  kResidPost,
  kMlpPre,
  kMlpPost,
  kAttnPattern,
  kAttnZ
};
std::string_view ToString(CapturePoint p);
std::optional<CapturePoint> ParseCapturePoint(std::string_view name);

// Records the live activation tensors the forward pass computes anyway (handles, not copies;
// nothing is kept for points not requested). Under autograd the captured tensors stay in the
// graph; use InferenceMode for harvesting.
class Capture {
 public:
  void Request(CapturePoint p, int64_t layer = -1);  // -1: every layer
  bool Wants(CapturePoint p, int64_t layer) const;
  bool Has(CapturePoint p, int64_t layer) const;
  const torch::Tensor& Get(CapturePoint p, int64_t layer) const;  // throws when not captured
  void Put(CapturePoint p, int64_t layer, torch::Tensor t);
  void Clear() { values_.clear(); }  // keeps the requests

 private:
  std::set<std::pair<CapturePoint, int64_t>> wanted_;
  std::map<std::pair<CapturePoint, int64_t>, torch::Tensor> values_;
};

// Called at every capture point of every layer with the live tensor; it may replace `value`
// (same shape) to intervene — e.g. mean-ablate a head through kAttnZ, patch a residual.
using ActivationHook = std::function<void(CapturePoint point, int64_t layer, torch::Tensor& value)>;

// ---- Adapters ------------------------------------------------------------------------------

// A change to the linear modules, applied inside the forward pass (LoRA, IA3: see adapters.h).
// The model calls Linear() for each fused group of each layer instead of its own GEMM.
class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // Must return residual + adapted(x·weightᵀ + bias) for `group` of `layer`. `x` is [N, in],
  // `weight` the group's fused [out, in] weight; `bias` and `residual` ([N, out]) may be
  // undefined. Groups the adapter does not touch should return BaseLinear(...).
  virtual torch::Tensor Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& residual) const = 0;
};

// What the model computes without an adapter: residual + x·weightᵀ + bias in one addmm.
torch::Tensor BaseLinear(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias, const torch::Tensor& residual);

// ---- Model ---------------------------------------------------------------------------------

struct ForwardOptions {
  const LinearAdapter* adapter = nullptr;
  Capture* capture = nullptr;
  const ActivationHook* hook = nullptr;
  // [n_layers, n_heads] multiplier on each head's attention·V before o_proj (1 keeps, 0
  // ablates). Undefined: no scaling.
  torch::Tensor head_scale;
  // int64 [P] positions: logits only there ([B, P, V]); undefined: every position ([B, T, V]).
  torch::Tensor logit_positions;
};

// The compute dtypes a Model accepts, as specs and `seedgrid model logits --dtype` spell them:
// "float32" | "bfloat16". Throws std::runtime_error naming the value otherwise.
torch::ScalarType ParseComputeDtype(std::string_view name);
std::string_view ComputeDtypeName(torch::ScalarType dtype);  // "float32" | "bfloat16"

class Model {
 public:
  // Zero weights (norm weights 1). InitRandom() for training from scratch. `dtype`: the compute
  // dtype, float32 or bfloat16 (see the header comment).
  Model(ModelConfig config, torch::Device device, torch::ScalarType dtype = torch::kFloat32);
  // Moves keep the weights; copies are explicit (Clone) because a copy would share them.
  // Adapters hold a reference to their model: create them after the model is in place.
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model Clone() const;  // deep copy (same device)

  // Loads <dir>/config.json and <dir>/model.safetensors, or the shards listed in
  // <dir>/model.safetensors.index.json, under the family's HF names (CheckpointTensors).
  // On the CPU, slots the file holds as the model computes with them become views of the file's
  // mapping (header comment; ViewFilesWhereStoredAsComputed in model.cpp says when). Every other
  // F32/F16/BF16 (and F64) tensor is read as stored (pread from the page cache, not through the
  // mapping) and copied once, converted to `dtype`, into the model's storage: a tensor already
  // in `dtype` is read straight into it, others through one 4 MiB staging buffer, so peak
  // memory is the storage plus that buffer, never storage plus file. Every name, shape, file and
  // dtype is checked before any weight changes. Throws std::runtime_error naming the file and
  // tensor for a missing, extra, mis-shaped or malformed tensor (all problems at once where
  // possible).
  static Model Load(const std::string& dir, torch::Device device,
                    torch::ScalarType dtype = torch::kFloat32);
  // Writes config.json (ToHfJson() plus `extra_config` keys) and model.safetensors (F32, or
  // BF16 for a bfloat16 model)
  // atomically (temp names, then rename). Tied lm_head is not written (HF convention).
  void Save(const std::string& dir, const Json& extra_config = Json::object()) const;
  // Loads only the weights from safetensors `path` into this model (same checks as Load).
  void LoadWeights(const std::string& path);

  // Normal(0, std) linear/embedding weights, zero biases, unit norms; deterministic from seed
  // (drawn on CPU, then copied: the same on every device).
  void InitRandom(uint64_t seed, double std = 0.02);

  const ModelConfig& config() const { return config_; }
  torch::Device device() const { return device_; }
  torch::ScalarType dtype() const { return dtype_; }  // the compute dtype

  // HF-named weights: views into flat storage; in-place edits are seen by Forward.
  std::vector<std::string> WeightNames() const;  // file order; lm_head absent when tied
  bool HasWeight(const std::string& name) const;
  torch::Tensor Weight(const std::string& name) const;  // throws naming it when unknown
  // The storage itself: fused tensors (…self_attn.qkv, …mlp.gate_up) plus every unfused
  // weight. EnableGrad() on it makes the whole model trainable (pretrain). Slots that were views
  // of the checkpoint file are copied into it first (once), and the named weights re-pointed:
  // take Weight() views and create adapters after this call, not before. The const overload
  // throws std::logic_error while any slot is still file-backed.
  FlatParams& params();
  const FlatParams& params() const;
  // Bytes of weights that are views of a checkpoint file's mapping, not copies in params().
  int64_t FileBackedBytes() const;

  // tokens: int64 [B, T]. Returns float32 logits [B, T, V] (or [B, P, V], see
  // logit_positions) whatever the compute dtype; captured activations are in the compute dtype.
  torch::Tensor Forward(const torch::Tensor& tokens, const ForwardOptions& opts = {}) const;
  // NextTokenLoss(Forward(tokens, opts), tokens, loss_mask) with the same value and gradients
  // (to float32 rounding), without the [B·T, V] logits: the LM head and the cross-entropy run
  // fused over chunks of rows, and when autograd will want them the gradients wrt the last
  // hidden state (and the head, when it is trained) are formed chunk by chunk in the same pass,
  // so backward does no LM-head GEMM of its own. Less memory traffic and ~3 [B·T, V] float32
  // buffers less peak memory than the plain path (a step's largest tensors at a 150k vocab).
  // Needs logits at every position: opts.logit_positions must be undefined. Gemma2's final
  // soft-cap takes the plain path.
  torch::Tensor ForwardNextTokenLoss(const torch::Tensor& tokens, const ForwardOptions& opts = {},
                                     const torch::Tensor& loss_mask = {}) const;

  // The fused weight of a group (views; bias undefined when the model has none).
  torch::Tensor GroupWeight(int64_t layer, LinearGroup g) const;
  torch::Tensor GroupBias(int64_t layer, LinearGroup g) const;
  // Row range [begin, end) of module m inside its group's fused weight.
  std::pair<int64_t, int64_t> GroupRows(ModuleKind m) const;
  static LinearGroup GroupOf(ModuleKind m);

 private:
  struct LayerWeights {  // the storage tensors of one layer (undefined when absent)
    torch::Tensor ln1, ln1_bias, qkv, qkv_bias, q_norm, k_norm, o, o_bias, post_attn, ln2, ln2_bias,
        gate_up, gate_up_bias, down, down_bias, post_mlp;
  };
  struct Pass;          // one forward pass's state and its steps (model.cpp)
  struct StoredTensor;  // a checkpoint tensor's file and view (LoadWeights)
  void BindViews();     // layers_, embed_ …, named_ from each slot's current storage
  torch::Tensor Storage(const std::string& slot) const;  // file-backed view, else params_ slot
  std::vector<torch::Tensor> SlotStorage() const;        // Storage of every slot, layout order
  std::set<std::string> ViewFilesWhereStoredAsComputed(
      const std::map<std::string, StoredTensor>& found);
  torch::Tensor Norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) const;
  torch::Tensor SlotView(const CheckpointTensor& t);  // the named view of a checkpoint tensor
  // Causal (optionally sliding-window) additive mask [rows, rows], rows = T or H·T (folded).
  torch::Tensor AttentionMask(int64_t H, int64_t T, int64_t window) const;
  std::pair<torch::Tensor, torch::Tensor> RopeTables(int64_t T) const;  // cos, sin [T, rope_dim]
  void InitRope();
  ModelConfig config_;
  torch::Device device_;
  torch::ScalarType dtype_ = torch::kFloat32;
  FlatParams params_;
  std::map<std::string, torch::Tensor> file_backed_;  // slot -> view of a checkpoint's mapping
  std::vector<LayerWeights> layers_;
  torch::Tensor embed_, pos_embed_, norm_, norm_bias_, head_;
  std::map<std::string, torch::Tensor> named_;  // HF name -> view (row slices of fused groups)
  std::map<std::string, std::vector<int64_t>> file_shape_;  // HF name -> shape in the file
  std::set<std::string> norm_names_;                        // norm weights (init 1, Gemma 0)
  torch::Tensor inv_freq_;     // [rope_dim / 2] float64 RoPE frequencies (scaling applied)
  double rope_attention_ = 1;  // YaRN's cos/sin factor
  // Masks per (H folded or 1, T, window) and RoPE tables per T, built on first use.
  struct Cache {
    std::mutex mu;
    std::map<std::tuple<int64_t, int64_t, int64_t>, torch::Tensor> masks;
    std::map<int64_t, std::pair<torch::Tensor, torch::Tensor>> rope;
  };
  std::shared_ptr<Cache> cache_ = std::make_shared<Cache>();
  std::vector<std::string> file_order_;
};

// int32 row-major tokens [rows, seq_len] -> int64 [rows, seq_len] on `device`.
torch::Tensor TokensTensor(const std::vector<int32_t>& tokens, int64_t rows, int64_t seq_len,
                           torch::Device device);

// Mean next-token cross-entropy of logits [B, T, V] against tokens [B, T] where
// loss_mask[B, T-1] (bool/float, optional) selects the predicted positions 1..T-1.
torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& tokens,
                            const torch::Tensor& loss_mask = {});

// ---- In-place weight edits -----------------------------------------------------------------

// Adds alpha·delta to named weights in place and restores them bit-exactly: the touched
// weights are saved on construction and SetAlpha always starts from the saved copy, so
// SetAlpha(0) and Restore() give back the identical bits. The destructor restores. Deltas are
// kept in float32; on a bfloat16 model W0 + alpha·delta is summed in float32 and rounded once
// to bfloat16, so a delta far below W0's bf16 resolution (~2^-8 relative) does not show.
class WeightEdit {
 public:
  // Validates every name and shape first (all problems in one error); changes nothing yet.
  WeightEdit(Model& model, std::map<std::string, torch::Tensor> deltas);
  ~WeightEdit();
  WeightEdit(const WeightEdit&) = delete;
  WeightEdit& operator=(const WeightEdit&) = delete;

  void SetAlpha(double alpha);  // W = W0 + alpha·delta
  void Restore();               // W = W0

 private:
  Model& model_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (live view, original)
  std::vector<torch::Tensor> deltas_;
};

}  // namespace seedgrid
