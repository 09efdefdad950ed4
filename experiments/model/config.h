// ModelConfig: the shape of a decoder-only transformer, without LibTorch, so the coordinator can
// validate a spec's `model:` params and a checkpoint's tensors before any GPU time is spent.
//
// Two sources:
//   * a Hugging Face config.json, one of the families in kFamilies (see docs/models.md):
//     llama, mistral, qwen2, qwen3, gemma, gemma2, gpt2, gpt_neox. FromHfJson() turns each
//     family's fields into the architecture switches below (norm kind, residual layout,
//     positions, soft-capping, sliding window, ...), so the forward pass reads switches, never
//     family names. Unknown families, rope types and unsupported switches are errors naming
//     the field.
//   * spec params (`model: {d_model, n_layers, ...}`, see ModelParamDefaults()): Llama-style.
// ToHfJson() writes an HF-style config.json that FromHfJson() reads back exactly: generated
// for Llama/Qwen with linear or llama3 RoPE (a non-gated GELU MLP, not an HF Llama feature, is
// marked by the extra key "seedgrid_mlp": "gelu"), the config.json it was read from otherwise.
//
// CheckpointTensors() lists every tensor an HF checkpoint of a config holds (name, shape and
// where it goes in the model), so the loader and the plan-time check agree by construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace seedgrid {

struct ModelConfig {
  std::string model_type = "llama";  // one of kFamilies (written back to config.json)
  int64_t vocab_size = 48;
  int64_t hidden_size = 64;         // d_model
  int64_t intermediate_size = 256;  // d_mlp
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;  // grouped-query attention when < num_attention_heads
  int64_t head_dim = 16;            // hidden_size / num_attention_heads unless given (Qwen3)
  // The longest row Forward accepts. Nothing is sized by it: masks and RoPE tables are built
  // for each batch's own length (a 131,072-position config costs what its batch costs).
  int64_t max_position_embeddings = 24;
  double rms_norm_eps = 1e-5;  // the eps of every norm (RMSNorm or LayerNorm)
  double rope_theta = 10000.0;
  // RoPE scaling, as HF's rope_scaling / rope_init_fn: "" (none), "linear" (factor),
  // "dynamic" (NTK by sequence length: no change up to max_position_embeddings), "llama3"
  // (factor, low/high_freq_factor, original_max_position_embeddings) or "yarn" (factor,
  // beta_fast, beta_slow, attention_factor | mscale/mscale_all_dim, truncate,
  // original_max_position_embeddings, default max_position_embeddings).
  std::string rope_scaling_type;
  double rope_scaling_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position = 8192;           // llama3; yarn: 0 = max_position_embeddings
  double rope_beta_fast = 32.0, rope_beta_slow = 1.0;  // yarn
  double rope_attention_factor = 0.0;                  // yarn: 0 = derived from factor (and mscale)
  double rope_mscale = 0.0, rope_mscale_all_dim = 0.0;
  bool rope_truncate = true;
  int64_t rotary_dim = 0;  // dims of each head RoPE rotates (GPT-NeoX rotary_pct); 0 = head_dim

  // Architecture switches (set by FromHfJson from the family; Llama-style by default).
  enum class Norm : uint8_t { kRms, kRmsPlusOne, kLayerNorm };  // kRmsPlusOne: Gemma's (1+w)
  Norm norm = Norm::kRms;
  bool learned_positions = false;   // GPT-2: wpe added to the embedding, no RoPE
  bool parallel_residual = false;   // GPT-NeoX: h + attn(ln1(h)) + mlp(ln2(h))
  bool sandwich_norm = false;       // Gemma2: norms on the attention and MLP outputs too
  double embedding_scale = 1.0;     // Gemma: sqrt(hidden_size)
  double attention_scale = 0.0;     // 0: 1/sqrt(head_dim); Gemma2: query_pre_attn_scalar^-1/2
  double attn_logit_softcap = 0.0;  // Gemma2: cap·tanh(scores/cap); 0 = none
  double final_logit_softcap = 0.0;
  // Sliding-window attention: a query sees the `sliding_window` latest keys (itself included)
  // on sliding layers: every layer (Mistral) or the even ones (Gemma2). 0 = none.
  int64_t sliding_window = 0;
  bool sliding_alternate = false;
  // MLP: gated (SwiGLU-style: down(act(gate(x)) * up(x)), HF Llama) or plain (down(act(up(x)))).
  bool gated_mlp = true;
  std::string hidden_act = "silu";  // silu | gelu | gelu_pytorch_tanh | relu
  bool attention_bias = false;      // biases on q, k, v (and o when o_bias)
  bool o_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;              // Qwen3: RMSNorm over head_dim on q and k before RoPE
  bool tie_word_embeddings = false;  // lm_head shares model.embed_tokens.weight
  // The config.json this came from (null for spec params); ToHfJson() gives it back as is for
  // the families and rope types its own fields do not cover.
  Json hf_json;

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
  int64_t rope_dim() const {
    return learned_positions ? 0 : (rotary_dim > 0 ? rotary_dim : head_dim);
  }
  bool IsSliding(int64_t layer) const {
    return sliding_window > 0 && (!sliding_alternate || layer % 2 == 0);
  }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t num_params() const;  // stored parameter count (lm_head counted once when tied)
};

// The families FromHfJson accepts, as config.json spells model_type.
inline constexpr const char* kFamilies[] = {"llama", "mistral", "qwen2", "qwen3",
                                            "gemma", "gemma2",  "gpt2",  "gpt_neox"};

// ---- Checkpoint layout ------------------------------------------------------------------

// Where a checkpoint tensor goes: the model's slot for it.
enum class Slot : uint8_t {
  kEmbed,
  kPosEmbed,
  kHead,
  kFinalNorm,
  kFinalNormBias,
  kLn1,
  kLn1Bias,
  kLn2,
  kLn2Bias,
  kPostAttnNorm,
  kPostMlpNorm,
  kQNorm,
  kKNorm,
  kQ,
  kK,
  kV,
  kQBias,
  kKBias,
  kVBias,
  kQkv,
  kQkvBias,  // fused q|k|v in one tensor (GPT-2 c_attn, GPT-NeoX query_key_value)
  kO,
  kOBias,
  kGate,
  kGateBias,
  kUp,
  kUpBias,
  kDown,
  kDownBias
};
// How the stored tensor relates to the model's [out, in] weight.
enum class StoredAs : uint8_t {
  kAsIs,
  kTransposed,       // GPT-2 Conv1D: stored [in, out]
  kHeadInterleaved,  // GPT-NeoX query_key_value: rows [head][q|k|v][head_dim]
};

struct CheckpointTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t layer = -1;  // -1: not per-layer
  Slot slot = Slot::kEmbed;
  StoredAs stored = StoredAs::kAsIs;
};

// Every tensor a checkpoint of `c` holds, in HF's order; the tied lm_head is absent. GPT-2
// names carry `name_prefix` ("" as published, "transformer." as GPT2LMHeadModel saves).
std::vector<CheckpointTensor> CheckpointTensors(const ModelConfig& c,
                                                const std::string& name_prefix = "");
// Non-parameter buffers some published checkpoints carry (GPT-2's attn.bias mask, NeoX's
// rotary_emb.inv_freq, a tied lm_head.weight): loaders skip them.
bool IsIgnoredCheckpointTensor(const ModelConfig& c, const std::string& name);
// GPT-2 files from GPT2LMHeadModel prefix names with "transformer."; published ones do not.
std::string CheckpointNamePrefix(const ModelConfig& c, const std::vector<std::string>& names);

// Problems with spec params `model:` (unknown values, impossible shapes) without throwing,
// each prefixed "model.".
std::vector<std::string> ModelParamProblems(const Json& model_params);

}  // namespace seedgrid
