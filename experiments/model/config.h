// ModelConfig: the shape of a Llama-style decoder, without LibTorch, so the coordinator can
// validate a spec's `model:` params before any GPU time is spent.
//
// Two sources:
//   * a Hugging Face config.json (model_type llama, qwen2 or qwen3; Qwen2 always has q/k/v
//     biases, Qwen3 always has per-head q_norm/k_norm and may set head_dim != hidden/heads);
//   * spec params (`model: {d_model, n_layers, ...}`, see ModelParamDefaults()).
// ToHfJson() writes an HF-style config.json that FromHfJson() reads back exactly; a non-gated
// GELU MLP (not an HF Llama feature) is marked by the extra key "seedgrid_mlp": "gelu".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace seedgrid {

struct ModelConfig {
  std::string model_type = "llama";  // llama | qwen2 | qwen3 (written back to config.json)
  int64_t vocab_size = 48;
  int64_t hidden_size = 64;         // d_model
  int64_t intermediate_size = 256;  // d_mlp
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;       // grouped-query attention when < num_attention_heads
  int64_t head_dim = 16;                 // hidden_size / num_attention_heads unless given (Qwen3)
  int64_t max_position_embeddings = 24;  // RoPE tables are built for this many positions
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  // RoPE scaling: "" (none), "linear" (factor) or "llama3" (factor, low/high_freq_factor,
  // original_max_position_embeddings), as in HF's rope_scaling.
  std::string rope_scaling_type;
  double rope_scaling_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;
  // MLP: gated (SwiGLU-style: down(act(gate(x)) * up(x)), HF Llama) or plain (down(act(up(x)))).
  bool gated_mlp = true;
  std::string hidden_act = "silu";  // silu | gelu | gelu_pytorch_tanh | relu
  bool attention_bias = false;      // biases on q, k, v (and o when o_bias)
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;              // Qwen3: RMSNorm over head_dim on q and k before RoPE
  bool tie_word_embeddings = false;  // lm_head shares model.embed_tokens.weight

  // Every problem at once ("model.<key>: message"); empty when valid.
  std::vector<std::string> Problems() const;
  void Validate() const;  // throws std::runtime_error joining Problems()

  // Parses an HF config.json object. Throws std::runtime_error naming `source` and every bad
  // or missing field; unsupported features (sliding-window attention, unknown rope scaling,
  // unknown model_type) are errors, not silently ignored.
  static ModelConfig FromHfJson(const Json& j, const std::string& source = "config.json");
  static ModelConfig FromHfFile(const std::string& path);
  Json ToHfJson() const;

  // From spec params merged over ModelParamDefaults(). Keys: vocab_size, d_model, n_layers,
  // n_heads, n_kv_heads (0: = n_heads), head_dim (0: d_model / n_heads), d_mlp, context,
  // mlp ("swiglu" | "gelu"), rope_theta, norm_eps, tie_embeddings, qk_norm, attention_bias.
  static ModelConfig FromParams(const Json& model_params);
  static Json ModelParamDefaults();  // the demo model: V 48, d 64, 2 layers, 4 heads, T 24

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t num_params() const;  // stored parameter count (lm_head counted once when tied)
};

// Problems with spec params `model:` (unknown values, impossible shapes) without throwing,
// each prefixed "model.".
std::vector<std::string> ModelParamProblems(const Json& model_params);

}  // namespace seedgrid
