// Parameter-efficient adapters (LoRA, IA3) applied inside Model::Forward, and the optimiser
// that trains them (or the whole model) from one flat buffer.
//
// LoRA on module m:  y = x·Wᵀ + scale·(drop(x)·Aᵀ)·Bᵀ,  scale = alpha / rank, A [r, in],
//   B [out, r]. Merged delta: scale·B·A. Modules sharing an input (q,k,v; gate,up) share one
//   GEMM for their stacked A's; each module's B then adds its product into its own column block
//   of the fused base output, in place (one addmm_ per module, a custom backward), so no GEMM
//   multiplies the zero blocks a block-diagonal B of the group would have.
//   Dropout is drawn once per group input (PEFT draws per module).
// IA3 (PEFT semantics): output scaling y = (x·Wᵀ)⊙l for q,k,v,o,gate,up (merged delta
//   (l−1)⊙rows of W); input scaling y = (x⊙l)·Wᵀ for down, the feed-forward module (merged
//   delta W⊙(l−1) over columns). l starts at 1.
//
// dtypes (as PEFT does): factors, their gradients and the optimiser state are float32 whatever
//   the model's compute dtype. On a bfloat16 model the adapter path casts its input to float32
//   (PEFT's _cast_input_dtype), computes the LoRA update in float32, adds it to the base output
//   in float32 and casts the sum back to bf16; IA3 scales in float32 and casts back. DeltaWeights
//   (dW) is float32.
//
// Targets: module short names and a layer range [floor(lo·L), floor(hi·L)) of the L layers,
// at least one layer (lo = hi selects layer floor(lo·L)).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "experiments/model/model.h"

namespace seedgrid {

class H5Writer;

struct AdapterTargets {
  std::vector<ModuleKind> modules;
  double layer_lo = 0.0;
  double layer_hi = 1.0;
  // The targeted layers of an L-layer model; throws when the range selects none.
  std::vector<int64_t> Layers(int64_t n_layers) const;
};

// An adapter whose trainable tensors live in one FlatParams.
class TrainableAdapter : public LinearAdapter {
 public:
  FlatParams& params() { return params_; }
  const FlatParams& params() const { return params_; }
  // Merged minus base weight for every targeted module, by HF weight name ([out, in]).
  virtual std::map<std::string, torch::Tensor> DeltaWeights() const = 0;
  // Factors under `prefix` (e.g. "adapter/pos"): "<prefix>/<hf name>/A" and "/B" (LoRA) or
  // "/l" (IA3), float32.
  virtual void WriteFactors(H5Writer& w, const std::string& prefix) const = 0;
  virtual std::string kind() const = 0;  // "lora" | "ia3"
  void set_training(bool training) { training_ = training; }
  // Data-parallel training (a `ranks: k` gang): this process's inputs are row block `index` of
  // `count` equal, contiguous blocks of the global batch. Random draws made while training (LoRA
  // dropout) are drawn for the whole global batch and sliced, so that every rank uses the masks
  // the ranks:1 run draws for the same rows (and the generators stay in step).
  void set_batch_slice(int64_t index, int64_t count);

 protected:
  FlatParams params_;
  bool training_ = true;
  int64_t slice_index_ = 0, slice_count_ = 1;
};

struct LoraOptions {
  int64_t rank = 4;
  double alpha = 8.0;
  double dropout = 0.0;
  // "kaiming": A ~ kaiming_uniform(a=√5) (PEFT default), B = 0.
  // "gaussian": A ~ N(0, std 1/rank) (PEFT's init_lora_weights="gaussian"), B = 0.
  std::string init = "kaiming";
  double init_b_std = 0.0;  // > 0: B ~ N(0, init_b_std) instead of 0 (benchmarks, tests)
};

class LoraAdapter : public TrainableAdapter {
 public:
  // Factors are drawn on CPU from `seed`, then moved to the model's device.
  LoraAdapter(const Model& model, const LoraOptions& options, AdapterTargets targets,
              uint64_t seed);
  torch::Tensor Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                       const torch::Tensor& weight, const torch::Tensor& bias,
                       const torch::Tensor& residual) const override;
  std::map<std::string, torch::Tensor> DeltaWeights() const override;
  void WriteFactors(H5Writer& w, const std::string& prefix) const override;
  std::string kind() const override { return "lora"; }

  double scale() const { return options_.alpha / static_cast<double>(options_.rank); }
  torch::Tensor A(const std::string& hf_name) const;  // [r, in]
  torch::Tensor B(const std::string& hf_name) const;  // [out, r]
  const AdapterTargets& targets() const { return targets_; }

 private:
  struct GroupParams {                  // one fused group of one layer, resolved once
    torch::Tensor a;                    // stacked A of the targeted modules [r·m, in]
    std::vector<torch::Tensor> blocks;  // per module of the group: B, or an empty [out, 0]
  };
  const Model& model_;
  LoraOptions options_;
  AdapterTargets targets_;
  std::vector<int64_t> layers_;
  std::vector<std::string> names_;  // targeted HF weight names
  std::map<std::pair<int64_t, LinearGroup>, GroupParams> groups_;
};

class Ia3Adapter : public TrainableAdapter {
 public:
  Ia3Adapter(const Model& model, AdapterTargets targets);
  torch::Tensor Linear(int64_t layer, LinearGroup group, const torch::Tensor& x,
                       const torch::Tensor& weight, const torch::Tensor& bias,
                       const torch::Tensor& residual) const override;
  std::map<std::string, torch::Tensor> DeltaWeights() const override;
  void WriteFactors(H5Writer& w, const std::string& prefix) const override;
  std::string kind() const override { return "ia3"; }
  torch::Tensor L(const std::string& hf_name) const;  // [out] or, for down, [in]

 private:
  const Model& model_;
  AdapterTargets targets_;
  std::vector<int64_t> layers_;
  std::vector<std::string> names_;
  // Per (layer, group): the output scale (targeted l's, ones elsewhere) or, for down, the
  // input scale; absent when the group is not targeted.
  std::map<std::pair<int64_t, LinearGroup>, std::vector<torch::Tensor>> groups_;
};

// AdamW (decoupled weight decay, bias-corrected; torch.optim.AdamW's update) over one flat
// buffer: eight tensor ops per step whatever the number of tensors.
class FlatAdamW {
 public:
  struct Options {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.01;
  };
  // `params` must have EnableGrad() called; the step reads params.grad_flat().
  FlatAdamW(FlatParams& params, Options options);
  void Step(double lr);  // lr for this step (schedules live with the caller)
  void Step() { Step(options_.lr); }
  int64_t steps() const { return step_; }

 private:
  FlatParams& params_;
  Options options_;
  torch::Tensor m_, v_;
  int64_t step_ = 0;
};

// Learning rate at `step` (0-based): linear warmup over `warmup` steps, then cosine decay to
// min_ratio·lr at `total` (schedule "cosine") or constant ("constant").
double ScheduledLr(const std::string& schedule, double lr, int64_t step, int64_t total,
                   int64_t warmup, double min_ratio = 0.1);

// Scales the flat gradient so its L2 norm is at most max_norm (no-op when max_norm <= 0).
// Returns the norm before clipping.
double ClipGradNorm(FlatParams& params, double max_norm);

}  // namespace seedgrid
