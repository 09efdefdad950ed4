#include "experiments/model/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/strings.h"

namespace seedgrid {
namespace {

std::string FamilyList() {
  std::string out;
  for (const char* f : kFamilies) out += (out.empty() ? "" : ", ") + std::string(f);
  return out;
}

bool KnownAct(const std::string& a) {
  return a == "silu" || a == "gelu" || a == "gelu_pytorch_tanh" || a == "relu";
}

// Reads optional typed fields of an HF config, collecting problems.
class Fields {
 public:
  Fields(const Json& j, std::vector<std::string>& problems) : j_(j), problems_(problems) {}

  void Int(const char* key, int64_t& out, bool required) {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) problems_.push_back(fmt::format("missing required field '{}'", key));
      return;
    }
    if (!it->is_number_integer()) {
      problems_.push_back(fmt::format("field '{}' must be an integer, got {}", key, it->dump()));
      return;
    }
    out = it->get<int64_t>();
  }
  void Double(const char* key, double& out) {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    if (!it->is_number()) {
      problems_.push_back(fmt::format("field '{}' must be a number, got {}", key, it->dump()));
      return;
    }
    out = it->get<double>();
  }
  void Bool(const char* key, bool& out) {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    if (!it->is_boolean()) {
      problems_.push_back(fmt::format("field '{}' must be a boolean, got {}", key, it->dump()));
      return;
    }
    out = it->get<bool>();
  }
  void String(const char* key, std::string& out) {
    const auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    if (!it->is_string()) {
      problems_.push_back(fmt::format("field '{}' must be a string, got {}", key, it->dump()));
      return;
    }
    out = it->get<std::string>();
  }

 private:
  const Json& j_;
  std::vector<std::string>& problems_;
};

}  // namespace

std::vector<std::string> ModelConfig::Problems() const {
  std::vector<std::string> p;
  const auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) p.push_back(fmt::format("model.{}: must be > 0, got {}", key, v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads > 0 && num_key_value_heads > 0 &&
      num_attention_heads % num_key_value_heads != 0)
    p.push_back(fmt::format("model.num_key_value_heads: {} does not divide num_attention_heads {}",
                            num_key_value_heads, num_attention_heads));
  if (!learned_positions && head_dim > 0) {
    const int64_t r = rope_dim();
    if (r <= 0 || r > head_dim || r % 2 != 0)
      p.push_back(fmt::format("model.rotary_dim: must be even and in [2, head_dim {}], got {}",
                              head_dim, r));
  }
  if (!(rms_norm_eps > 0)) p.push_back("model.rms_norm_eps: must be > 0");
  if (!(rope_theta > 0)) p.push_back("model.rope_theta: must be > 0");
  if (!KnownAct(hidden_act))
    p.push_back(
        fmt::format("model.hidden_act: '{}' is not supported (silu, gelu, gelu_pytorch_tanh, relu)",
                    hidden_act));
  if (!rope_scaling_type.empty() && rope_scaling_type != "linear" &&
      rope_scaling_type != "dynamic" && rope_scaling_type != "llama3" &&
      rope_scaling_type != "yarn")
    p.push_back(fmt::format(
        "model.rope_scaling.rope_type: '{}' is not supported (linear, dynamic, llama3, yarn)",
        rope_scaling_type));
  if (!rope_scaling_type.empty() && !(rope_scaling_factor > 0))
    p.push_back("model.rope_scaling.factor: must be > 0");
  if (rope_scaling_type == "llama3" && !(rope_high_freq_factor > rope_low_freq_factor))
    p.push_back("model.rope_scaling: high_freq_factor must be > low_freq_factor");
  if (sliding_window < 0) p.push_back("model.sliding_window: must be >= 0");
  if (attn_logit_softcap < 0 || final_logit_softcap < 0)
    p.push_back("model: soft-capping values must be >= 0");
  if (std::find_if(std::begin(kFamilies), std::end(kFamilies),
                   [&](const char* f) { return model_type == f; }) == std::end(kFamilies))
    p.push_back(
        fmt::format("model.model_type: '{}' is not supported ({})", model_type, FamilyList()));
  return p;
}

void ModelConfig::Validate() const {
  const auto p = Problems();
  if (!p.empty()) throw std::runtime_error("invalid model config: " + Join(p, "; "));
}

namespace {

// rope_scaling: {rope_type | type, factor, ...} or null.
void ParseRopeScaling(const Json& j, ModelConfig& c, std::vector<std::string>& problems) {
  const auto rs = j.find("rope_scaling");
  if (rs == j.end() || rs->is_null()) return;
  if (!rs->is_object()) {
    problems.push_back("rope_scaling: must be an object or null");
    return;
  }
  std::vector<std::string> sub;
  Fields rf(*rs, sub);
  std::string type;
  rf.String("type", type);
  rf.String("rope_type", type);
  if (type == "default") type.clear();
  c.rope_scaling_type = type;
  const auto need = [&](const char* key) {
    if (!rs->contains(key) || (*rs)[key].is_null())
      sub.push_back(fmt::format("missing required field '{}' for rope_type '{}'", key, type));
  };
  if (!type.empty()) need("factor");
  if (type == "llama3")
    for (const char* k :
         {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
      need(k);
  rf.Double("factor", c.rope_scaling_factor);
  rf.Double("low_freq_factor", c.rope_low_freq_factor);
  rf.Double("high_freq_factor", c.rope_high_freq_factor);
  if (type == "yarn") c.rope_original_max_position = 0;
  rf.Int("original_max_position_embeddings", c.rope_original_max_position, false);
  rf.Double("beta_fast", c.rope_beta_fast);
  rf.Double("beta_slow", c.rope_beta_slow);
  rf.Double("attention_factor", c.rope_attention_factor);
  rf.Double("mscale", c.rope_mscale);
  rf.Double("mscale_all_dim", c.rope_mscale_all_dim);
  rf.Bool("truncate", c.rope_truncate);
  for (auto& s : sub) problems.push_back("rope_scaling: " + s);
}

// The Llama-style families: llama, mistral, qwen2, qwen3, gemma, gemma2.
void ParseLlamaStyle(const Json& j, ModelConfig& c, std::vector<std::string>& problems) {
  Fields f(j, problems);
  const std::string& t = c.model_type;
  const bool gemma = t == "gemma" || t == "gemma2";
  f.Int("vocab_size", c.vocab_size, true);
  f.Int("hidden_size", c.hidden_size, true);
  f.Int("intermediate_size", c.intermediate_size, true);
  f.Int("num_hidden_layers", c.num_hidden_layers, true);
  f.Int("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  f.Int("num_key_value_heads", c.num_key_value_heads, false);
  // GemmaConfig's head_dim defaults to 256; the others derive it.
  c.head_dim =
      gemma ? 256 : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  f.Int("head_dim", c.head_dim, false);
  f.Int("max_position_embeddings", c.max_position_embeddings, true);
  f.Double("rms_norm_eps", c.rms_norm_eps);
  f.Double("rope_theta", c.rope_theta);
  f.String("hidden_act", c.hidden_act);
  // HF defaults: Gemma ties the head, the others do not.
  c.tie_word_embeddings = gemma;
  f.Bool("tie_word_embeddings", c.tie_word_embeddings);
  f.Bool("mlp_bias", c.mlp_bias);
  if (t == "qwen2") {
    c.attention_bias = true;  // hard-wired in Qwen2Attention
    bool sliding = false;
    f.Bool("use_sliding_window", sliding);
    if (sliding)
      problems.push_back("use_sliding_window: sliding-window attention is not supported for qwen2");
  } else {
    f.Bool("attention_bias", c.attention_bias);
    c.o_bias = c.attention_bias;  // Llama/Qwen3/Gemma attention biases o_proj too (Qwen2 not)
  }
  if (t == "qwen3") {
    c.qk_norm = true;
    bool sliding = false;
    f.Bool("use_sliding_window", sliding);
    if (sliding)
      problems.push_back("use_sliding_window: sliding-window attention is not supported for qwen3");
  }
  if (t == "mistral") f.Int("sliding_window", c.sliding_window, false);  // null: none
  if (gemma) {
    c.norm = ModelConfig::Norm::kRmsPlusOne;
    c.embedding_scale = std::sqrt(static_cast<double>(c.hidden_size));
    // GemmaMLP uses hidden_activation; unset, HF falls back to gelu_pytorch_tanh.
    c.hidden_act = "gelu_pytorch_tanh";
    f.String("hidden_activation", c.hidden_act);
  }
  if (t == "gemma2") {
    c.sandwich_norm = true;
    double qpas = 256, attn_cap = 50.0, final_cap = 30.0;
    c.sliding_window = 4096;
    f.Double("query_pre_attn_scalar", qpas);
    f.Double("attn_logit_softcapping", attn_cap);
    f.Double("final_logit_softcapping", final_cap);
    f.Int("sliding_window", c.sliding_window, false);
    if (j.contains("attn_logit_softcapping") && j["attn_logit_softcapping"].is_null()) attn_cap = 0;
    if (j.contains("final_logit_softcapping") && j["final_logit_softcapping"].is_null())
      final_cap = 0;
    if (!(qpas > 0)) problems.push_back("query_pre_attn_scalar: must be > 0");
    c.attention_scale = 1.0 / std::sqrt(qpas);
    c.attn_logit_softcap = attn_cap;
    c.final_logit_softcap = final_cap;
    c.sliding_alternate = true;
  }
  std::string mlp;
  f.String("seedgrid_mlp", mlp);
  if (!mlp.empty()) {
    if (mlp == "gelu") {
      c.gated_mlp = false;
    } else if (mlp != "gated") {
      problems.push_back(fmt::format("seedgrid_mlp: '{}' is not gated or gelu", mlp));
    }
  }
}

// GPT-2 spells activations the way its original code did.
std::string Gpt2Act(const std::string& a) {
  if (a == "gelu_new" || a == "gelu_fast" || a == "gelu_pytorch_tanh") return "gelu_pytorch_tanh";
  return a;
}

void ParseGpt2(const Json& j, ModelConfig& c, std::vector<std::string>& problems) {
  Fields f(j, problems);
  f.Int("vocab_size", c.vocab_size, true);
  f.Int("n_embd", c.hidden_size, true);
  f.Int("n_layer", c.num_hidden_layers, true);
  f.Int("n_head", c.num_attention_heads, true);
  f.Int("n_positions", c.max_position_embeddings, true);
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  c.intermediate_size = 4 * c.hidden_size;  // n_inner: null
  f.Int("n_inner", c.intermediate_size, false);
  std::string act = "gelu_new";
  f.String("activation_function", act);
  c.hidden_act = Gpt2Act(act);
  c.rms_norm_eps = 1e-5;
  f.Double("layer_norm_epsilon", c.rms_norm_eps);
  c.tie_word_embeddings = true;
  f.Bool("tie_word_embeddings", c.tie_word_embeddings);
  bool scale = true, by_layer = false, cross = false;
  f.Bool("scale_attn_weights", scale);
  f.Bool("scale_attn_by_inverse_layer_idx", by_layer);
  f.Bool("add_cross_attention", cross);
  if (!scale) c.attention_scale = 1.0;
  if (by_layer) problems.push_back("scale_attn_by_inverse_layer_idx: true is not supported");
  if (cross) problems.push_back("add_cross_attention: true is not supported");
  c.norm = ModelConfig::Norm::kLayerNorm;
  c.learned_positions = true;
  c.gated_mlp = false;
  c.attention_bias = c.o_bias = c.mlp_bias = true;
}

void ParseGptNeox(const Json& j, ModelConfig& c, std::vector<std::string>& problems) {
  Fields f(j, problems);
  f.Int("vocab_size", c.vocab_size, true);
  f.Int("hidden_size", c.hidden_size, true);
  f.Int("intermediate_size", c.intermediate_size, true);
  f.Int("num_hidden_layers", c.num_hidden_layers, true);
  f.Int("num_attention_heads", c.num_attention_heads, true);
  f.Int("max_position_embeddings", c.max_position_embeddings, true);
  c.num_key_value_heads = c.num_attention_heads;
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  double pct = 0.25;
  f.Double("rotary_pct", pct);
  f.Double("partial_rotary_factor", pct);                                      // newer configs
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * pct);  // int() as HF
  f.Double("rotary_emb_base", c.rope_theta);
  f.Double("rope_theta", c.rope_theta);
  c.hidden_act = "gelu";
  f.String("hidden_act", c.hidden_act);
  c.hidden_act = Gpt2Act(c.hidden_act);
  f.Double("layer_norm_eps", c.rms_norm_eps);
  f.Bool("tie_word_embeddings", c.tie_word_embeddings);
  c.parallel_residual = true;
  f.Bool("use_parallel_residual", c.parallel_residual);
  c.attention_bias = true;
  f.Bool("attention_bias", c.attention_bias);
  c.o_bias = c.attention_bias;
  c.mlp_bias = true;  // GPTNeoXMLP's linears always have biases
  c.norm = ModelConfig::Norm::kLayerNorm;
  c.gated_mlp = false;
}

}  // namespace

ModelConfig ModelConfig::FromHfJson(const Json& j, const std::string& source) {
  if (!j.is_object()) throw std::runtime_error(source + ": config is not a JSON object");
  std::vector<std::string> problems;
  Fields f(j, problems);
  ModelConfig c;
  c.hf_json = j;
  f.String("model_type", c.model_type);
  if (!j.contains("model_type")) problems.push_back("missing required field 'model_type'");
  if (c.model_type == "gpt2") {
    ParseGpt2(j, c, problems);
  } else if (c.model_type == "gpt_neox") {
    ParseGptNeox(j, c, problems);
  } else {
    ParseLlamaStyle(j, c, problems);
  }
  if (c.model_type != "gpt2") ParseRopeScaling(j, c, problems);
  for (auto& p : c.Problems()) problems.push_back(p);
  if (!problems.empty())
    throw std::runtime_error(fmt::format("{}: {}", source, Join(problems, "; ")));
  return c;
}

ModelConfig ModelConfig::FromHfFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open model config");
  std::stringstream ss;
  ss << in.rdbuf();
  Json j;
  try {
    j = Json::parse(ss.str());
  } catch (const Json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  return FromHfJson(j, path);
}

Json ModelConfig::ToHfJson() const {
  // The fields below describe Llama/Qwen configs with linear or llama3 RoPE exactly; any other
  // family or rope type is given back as it was read.
  const bool generated = model_type == "llama" || model_type == "qwen2" || model_type == "qwen3";
  const bool rope_ok =
      rope_scaling_type.empty() || rope_scaling_type == "linear" || rope_scaling_type == "llama3";
  if (!hf_json.is_null() && !(generated && rope_ok)) return hf_json;
  static const std::map<std::string, std::string> kArch = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"}};
  Json j = {{"architectures", {kArch.count(model_type) ? kArch.at(model_type) : model_type}},
            {"model_type", model_type},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"intermediate_size", intermediate_size},
            {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads},
            {"num_key_value_heads", num_key_value_heads},
            {"head_dim", head_dim},
            {"max_position_embeddings", max_position_embeddings},
            {"rms_norm_eps", rms_norm_eps},
            {"rope_theta", rope_theta},
            {"hidden_act", hidden_act},
            {"tie_word_embeddings", tie_word_embeddings},
            {"mlp_bias", mlp_bias},
            {"torch_dtype", "float32"}};
  if (model_type != "qwen2") j["attention_bias"] = attention_bias;
  if (!gated_mlp) j["seedgrid_mlp"] = "gelu";
  if (rope_scaling_type.empty()) {
    j["rope_scaling"] = nullptr;
  } else {
    Json rs = {{"rope_type", rope_scaling_type}, {"factor", rope_scaling_factor}};
    if (rope_scaling_type == "llama3") {
      rs["low_freq_factor"] = rope_low_freq_factor;
      rs["high_freq_factor"] = rope_high_freq_factor;
      rs["original_max_position_embeddings"] = rope_original_max_position;
    }
    j["rope_scaling"] = rs;
  }
  return j;
}

Json ModelConfig::ModelParamDefaults() {
  return {{"vocab_size", 48},      {"d_model", 64},          {"n_layers", 2},
          {"n_heads", 4},          {"n_kv_heads", 0},        {"head_dim", 0},
          {"d_mlp", 256},          {"context", 24},          {"mlp", "swiglu"},
          {"rope_theta", 10000.0}, {"norm_eps", 1e-5},       {"tie_embeddings", false},
          {"qk_norm", false},      {"attention_bias", false}};
}

std::vector<std::string> ModelParamProblems(const Json& model_params) {
  try {
    return ModelConfig::FromParams(model_params).Problems();
  } catch (const std::exception& e) {
    return {e.what()};
  }
}

ModelConfig ModelConfig::FromParams(const Json& p) {
  Json m = ModelParamDefaults();
  if (!p.is_null()) {
    if (!p.is_object()) throw std::runtime_error("model: must be an object");
    for (const auto& [k, v] : p.items()) {
      if (!m.contains(k)) throw std::runtime_error(fmt::format("model.{}: unknown param", k));
      m[k] = v;
    }
  }
  ModelConfig c;
  try {
    c.vocab_size = m.at("vocab_size").get<int64_t>();
    c.hidden_size = m.at("d_model").get<int64_t>();
    c.num_hidden_layers = m.at("n_layers").get<int64_t>();
    c.num_attention_heads = m.at("n_heads").get<int64_t>();
    const int64_t kv = m.at("n_kv_heads").get<int64_t>();
    c.num_key_value_heads = kv == 0 ? c.num_attention_heads : kv;
    const int64_t hd = m.at("head_dim").get<int64_t>();
    c.head_dim =
        hd != 0 ? hd : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
    c.intermediate_size = m.at("d_mlp").get<int64_t>();
    c.max_position_embeddings = m.at("context").get<int64_t>();
    const std::string mlp = m.at("mlp").get<std::string>();
    if (mlp == "swiglu") {
      c.gated_mlp = true;
      c.hidden_act = "silu";
    } else if (mlp == "gelu") {
      c.gated_mlp = false;
      c.hidden_act = "gelu";
    } else {
      throw std::runtime_error(fmt::format("model.mlp: '{}' is not swiglu or gelu", mlp));
    }
    c.rope_theta = m.at("rope_theta").get<double>();
    c.rms_norm_eps = m.at("norm_eps").get<double>();
    c.tie_word_embeddings = m.at("tie_embeddings").get<bool>();
    c.qk_norm = m.at("qk_norm").get<bool>();
    c.attention_bias = m.at("attention_bias").get<bool>();
  } catch (const Json::exception& e) {
    throw std::runtime_error(std::string("model: wrong type: ") + e.what());
  }
  if (c.qk_norm) c.model_type = "qwen3";
  c.o_bias = c.attention_bias;
  if (c.num_attention_heads > 0 && c.head_dim * c.num_attention_heads != c.hidden_size &&
      m.at("head_dim").get<int64_t>() == 0)
    throw std::runtime_error(fmt::format("model.n_heads: {} does not divide d_model {}",
                                         c.num_attention_heads, c.hidden_size));
  return c;
}

int64_t ModelConfig::num_params() const {
  int64_t n = 0;
  for (const auto& t : CheckpointTensors(*this)) {
    int64_t e = 1;
    for (int64_t s : t.shape) e *= s;
    n += e;
  }
  return n;
}

namespace {

// GPT-2 (Conv1D weights stored [in, out]; fused c_attn).
std::vector<CheckpointTensor> Gpt2Tensors(const ModelConfig& c, const std::string& pre) {
  const int64_t d = c.hidden_size, m = c.intermediate_size;
  std::vector<CheckpointTensor> v;
  v.push_back({pre + "wte.weight", {c.vocab_size, d}, -1, Slot::kEmbed});
  v.push_back({pre + "wpe.weight", {c.max_position_embeddings, d}, -1, Slot::kPosEmbed});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("{}h.{}.", pre, l);
    const auto T = StoredAs::kTransposed;
    v.push_back({p + "ln_1.weight", {d}, l, Slot::kLn1});
    v.push_back({p + "ln_1.bias", {d}, l, Slot::kLn1Bias});
    v.push_back({p + "attn.c_attn.weight", {d, 3 * d}, l, Slot::kQkv, T});
    v.push_back({p + "attn.c_attn.bias", {3 * d}, l, Slot::kQkvBias});
    v.push_back({p + "attn.c_proj.weight", {d, d}, l, Slot::kO, T});
    v.push_back({p + "attn.c_proj.bias", {d}, l, Slot::kOBias});
    v.push_back({p + "ln_2.weight", {d}, l, Slot::kLn2});
    v.push_back({p + "ln_2.bias", {d}, l, Slot::kLn2Bias});
    v.push_back({p + "mlp.c_fc.weight", {d, m}, l, Slot::kUp, T});
    v.push_back({p + "mlp.c_fc.bias", {m}, l, Slot::kUpBias});
    v.push_back({p + "mlp.c_proj.weight", {m, d}, l, Slot::kDown, T});
    v.push_back({p + "mlp.c_proj.bias", {d}, l, Slot::kDownBias});
  }
  v.push_back({pre + "ln_f.weight", {d}, -1, Slot::kFinalNorm});
  v.push_back({pre + "ln_f.bias", {d}, -1, Slot::kFinalNormBias});
  if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", {c.vocab_size, d}, -1, Slot::kHead});
  return v;
}

// GPT-NeoX (fused query_key_value, rows [head][q|k|v][head_dim]).
std::vector<CheckpointTensor> NeoxTensors(const ModelConfig& c) {
  const int64_t d = c.hidden_size, m = c.intermediate_size, q = c.q_dim();
  std::vector<CheckpointTensor> v;
  v.push_back({"gpt_neox.embed_in.weight", {c.vocab_size, d}, -1, Slot::kEmbed});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("gpt_neox.layers.{}.", l);
    const auto I = StoredAs::kHeadInterleaved;
    v.push_back({p + "input_layernorm.weight", {d}, l, Slot::kLn1});
    v.push_back({p + "input_layernorm.bias", {d}, l, Slot::kLn1Bias});
    v.push_back({p + "post_attention_layernorm.weight", {d}, l, Slot::kLn2});
    v.push_back({p + "post_attention_layernorm.bias", {d}, l, Slot::kLn2Bias});
    v.push_back({p + "attention.query_key_value.weight", {3 * q, d}, l, Slot::kQkv, I});
    if (c.attention_bias)
      v.push_back({p + "attention.query_key_value.bias", {3 * q}, l, Slot::kQkvBias, I});
    v.push_back({p + "attention.dense.weight", {d, q}, l, Slot::kO});
    if (c.o_bias) v.push_back({p + "attention.dense.bias", {d}, l, Slot::kOBias});
    v.push_back({p + "mlp.dense_h_to_4h.weight", {m, d}, l, Slot::kUp});
    v.push_back({p + "mlp.dense_h_to_4h.bias", {m}, l, Slot::kUpBias});
    v.push_back({p + "mlp.dense_4h_to_h.weight", {d, m}, l, Slot::kDown});
    v.push_back({p + "mlp.dense_4h_to_h.bias", {d}, l, Slot::kDownBias});
  }
  v.push_back({"gpt_neox.final_layer_norm.weight", {d}, -1, Slot::kFinalNorm});
  v.push_back({"gpt_neox.final_layer_norm.bias", {d}, -1, Slot::kFinalNormBias});
  if (!c.tie_word_embeddings) v.push_back({"embed_out.weight", {c.vocab_size, d}, -1, Slot::kHead});
  return v;
}

// Llama, Mistral, Qwen2/3, Gemma/Gemma2 (and seedgrid's own checkpoints).
std::vector<CheckpointTensor> LlamaTensors(const ModelConfig& c) {
  const int64_t d = c.hidden_size, m = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  std::vector<CheckpointTensor> v;
  v.push_back({"model.embed_tokens.weight", {c.vocab_size, d}, -1, Slot::kEmbed});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    v.push_back({p + "input_layernorm.weight", {d}, l, Slot::kLn1});
    v.push_back({p + "self_attn.q_proj.weight", {q, d}, l, Slot::kQ});
    if (c.attention_bias) v.push_back({p + "self_attn.q_proj.bias", {q}, l, Slot::kQBias});
    v.push_back({p + "self_attn.k_proj.weight", {kv, d}, l, Slot::kK});
    if (c.attention_bias) v.push_back({p + "self_attn.k_proj.bias", {kv}, l, Slot::kKBias});
    v.push_back({p + "self_attn.v_proj.weight", {kv, d}, l, Slot::kV});
    if (c.attention_bias) v.push_back({p + "self_attn.v_proj.bias", {kv}, l, Slot::kVBias});
    if (c.qk_norm) {
      v.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, l, Slot::kQNorm});
      v.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, l, Slot::kKNorm});
    }
    v.push_back({p + "self_attn.o_proj.weight", {d, q}, l, Slot::kO});
    if (c.o_bias) v.push_back({p + "self_attn.o_proj.bias", {d}, l, Slot::kOBias});
    if (c.sandwich_norm) {
      v.push_back({p + "post_attention_layernorm.weight", {d}, l, Slot::kPostAttnNorm});
      v.push_back({p + "pre_feedforward_layernorm.weight", {d}, l, Slot::kLn2});
      v.push_back({p + "post_feedforward_layernorm.weight", {d}, l, Slot::kPostMlpNorm});
    } else {
      v.push_back({p + "post_attention_layernorm.weight", {d}, l, Slot::kLn2});
    }
    if (c.gated_mlp) {
      v.push_back({p + "mlp.gate_proj.weight", {m, d}, l, Slot::kGate});
      if (c.mlp_bias) v.push_back({p + "mlp.gate_proj.bias", {m}, l, Slot::kGateBias});
    }
    v.push_back({p + "mlp.up_proj.weight", {m, d}, l, Slot::kUp});
    if (c.mlp_bias) v.push_back({p + "mlp.up_proj.bias", {m}, l, Slot::kUpBias});
    v.push_back({p + "mlp.down_proj.weight", {d, m}, l, Slot::kDown});
    if (c.mlp_bias) v.push_back({p + "mlp.down_proj.bias", {d}, l, Slot::kDownBias});
  }
  v.push_back({"model.norm.weight", {d}, -1, Slot::kFinalNorm});
  if (!c.tie_word_embeddings) v.push_back({"lm_head.weight", {c.vocab_size, d}, -1, Slot::kHead});
  return v;
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<CheckpointTensor> CheckpointTensors(const ModelConfig& c,
                                                const std::string& name_prefix) {
  if (c.model_type == "gpt2") return Gpt2Tensors(c, name_prefix);
  if (c.model_type == "gpt_neox") return NeoxTensors(c);
  return LlamaTensors(c);
}

bool IsIgnoredCheckpointTensor(const ModelConfig& c, const std::string& name) {
  if (name.find("rotary_emb.inv_freq") != std::string::npos) return true;
  if (c.tie_word_embeddings && (name == "lm_head.weight" || name == "embed_out.weight"))
    return true;
  if (c.model_type == "gpt2" || c.model_type == "gpt_neox")  // causal-mask buffers
    return EndsWith(name, ".attn.bias") || EndsWith(name, ".attn.masked_bias") ||
           EndsWith(name, ".attention.bias") || EndsWith(name, ".attention.masked_bias");
  return false;
}

std::string CheckpointNamePrefix(const ModelConfig& c, const std::vector<std::string>& names) {
  if (c.model_type != "gpt2") return "";
  for (const auto& n : names)
    if (n.rfind("transformer.", 0) == 0) return "transformer.";
  return "";
}

}  // namespace seedgrid
