#include "experiments/model/config.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/strings.h"

namespace seedgrid {
namespace {

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
  if (head_dim > 0 && head_dim % 2 != 0)
    p.push_back(fmt::format("model.head_dim: must be even for RoPE, got {}", head_dim));
  if (!(rms_norm_eps > 0)) p.push_back("model.rms_norm_eps: must be > 0");
  if (!(rope_theta > 0)) p.push_back("model.rope_theta: must be > 0");
  if (!KnownAct(hidden_act))
    p.push_back(
        fmt::format("model.hidden_act: '{}' is not supported (silu, gelu, gelu_pytorch_tanh, relu)",
                    hidden_act));
  if (!rope_scaling_type.empty() && rope_scaling_type != "linear" && rope_scaling_type != "llama3")
    p.push_back(fmt::format("model.rope_scaling: type '{}' is not supported (linear, llama3)",
                            rope_scaling_type));
  if (model_type != "llama" && model_type != "qwen2" && model_type != "qwen3")
    p.push_back(
        fmt::format("model.model_type: '{}' is not supported (llama, qwen2, qwen3)", model_type));
  return p;
}

void ModelConfig::Validate() const {
  const auto p = Problems();
  if (!p.empty()) throw std::runtime_error("invalid model config: " + Join(p, "; "));
}

ModelConfig ModelConfig::FromHfJson(const Json& j, const std::string& source) {
  if (!j.is_object()) throw std::runtime_error(source + ": config is not a JSON object");
  std::vector<std::string> problems;
  Fields f(j, problems);
  ModelConfig c;
  f.String("model_type", c.model_type);
  if (!j.contains("model_type")) problems.push_back("missing required field 'model_type'");
  f.Int("vocab_size", c.vocab_size, true);
  f.Int("hidden_size", c.hidden_size, true);
  f.Int("intermediate_size", c.intermediate_size, true);
  f.Int("num_hidden_layers", c.num_hidden_layers, true);
  f.Int("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  f.Int("num_key_value_heads", c.num_key_value_heads, false);
  c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
  f.Int("head_dim", c.head_dim, false);
  f.Int("max_position_embeddings", c.max_position_embeddings, true);
  f.Double("rms_norm_eps", c.rms_norm_eps);
  f.Double("rope_theta", c.rope_theta);
  f.String("hidden_act", c.hidden_act);
  f.Bool("tie_word_embeddings", c.tie_word_embeddings);
  f.Bool("mlp_bias", c.mlp_bias);
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // hard-wired in Qwen2Attention
    bool sliding = false;
    f.Bool("use_sliding_window", sliding);
    if (sliding)
      problems.push_back("use_sliding_window: sliding-window attention is not supported");
  } else {
    f.Bool("attention_bias", c.attention_bias);
    c.o_bias = c.attention_bias;  // Llama/Qwen3 attention biases o_proj too (Qwen2 does not)
  }
  if (c.model_type == "qwen3") c.qk_norm = true;
  std::string mlp;
  f.String("seedgrid_mlp", mlp);
  if (!mlp.empty()) {
    if (mlp == "gelu") {
      c.gated_mlp = false;
    } else if (mlp != "gated") {
      problems.push_back(fmt::format("seedgrid_mlp: '{}' is not gated or gelu", mlp));
    }
  }
  const auto rs = j.find("rope_scaling");
  if (rs != j.end() && !rs->is_null()) {
    if (!rs->is_object()) {
      problems.push_back("rope_scaling: must be an object or null");
    } else {
      std::string type;
      Fields rf(*rs, problems);
      rf.String("type", type);
      rf.String("rope_type", type);
      if (type == "default") type.clear();
      c.rope_scaling_type = type;
      rf.Double("factor", c.rope_scaling_factor);
      rf.Double("low_freq_factor", c.rope_low_freq_factor);
      rf.Double("high_freq_factor", c.rope_high_freq_factor);
      rf.Int("original_max_position_embeddings", c.rope_original_max_position, false);
    }
  }
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
  const int64_t d = hidden_size;
  int64_t per_layer = d * (q_dim() + 2 * kv_dim()) + q_dim() * d +
                      (gated_mlp ? 3 : 2) * d * intermediate_size + 2 * d;
  if (attention_bias) per_layer += q_dim() + 2 * kv_dim();
  if (o_bias) per_layer += d;
  if (mlp_bias) per_layer += (gated_mlp ? 2 : 1) * intermediate_size + d;
  if (qk_norm) per_layer += 2 * head_dim;
  return vocab_size * d * (tie_word_embeddings ? 1 : 2) + d + num_hidden_layers * per_layer;
}

}  // namespace seedgrid
