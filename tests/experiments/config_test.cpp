#include "experiments/model/config.h"

#include <gtest/gtest.h>

namespace seedgrid {
namespace {

// Abridged from the published config.json files.
const char* kLlama = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

const char* kQwen2 = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
  "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
  "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})";

const char* kQwen3 = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

TEST(ModelConfig, ParsesLlama32) {
  const auto c = ModelConfig::FromHfJson(Json::parse(kLlama));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden_size, 2048);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);
  EXPECT_TRUE(c.gated_mlp);
  EXPECT_EQ(c.rope_scaling_type, "llama3");
  EXPECT_EQ(c.rope_scaling_factor, 32.0);
  EXPECT_EQ(c.rope_original_max_position, 8192);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.vocab_size, 128256);
}

TEST(ModelConfig, ParsesQwen2WithImplicitQkvBias) {
  const auto c = ModelConfig::FromHfJson(Json::parse(kQwen2));
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
}

TEST(ModelConfig, ParsesQwen3WithQkNormAndHeadDim) {
  const auto c = ModelConfig::FromHfJson(Json::parse(kQwen3));
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.head_dim, 128);  // != 1024 / 16
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_EQ(c.rope_theta, 1e6);  // integer in the file
  EXPECT_TRUE(c.rope_scaling_type.empty());
}

TEST(ModelConfig, RoundTripsThroughHfJson) {
  for (const char* text : {kLlama, kQwen2, kQwen3}) {
    const auto c = ModelConfig::FromHfJson(Json::parse(text));
    const auto back = ModelConfig::FromHfJson(c.ToHfJson());
    EXPECT_EQ(back.ToHfJson(), c.ToHfJson());
    EXPECT_EQ(back.attention_bias, c.attention_bias);
    EXPECT_EQ(back.o_bias, c.o_bias);
    EXPECT_EQ(back.qk_norm, c.qk_norm);
    EXPECT_EQ(back.head_dim, c.head_dim);
  }
  auto gelu = ModelConfig::FromParams({{"mlp", "gelu"}, {"attention_bias", true}});
  const auto back = ModelConfig::FromHfJson(gelu.ToHfJson());
  EXPECT_FALSE(back.gated_mlp);
  EXPECT_EQ(back.hidden_act, "gelu");
  EXPECT_TRUE(back.attention_bias);
  EXPECT_TRUE(back.o_bias);
}

TEST(ModelConfig, ReportsEveryProblemAtOnce) {
  Json j = Json::parse(kQwen2);
  j.erase("hidden_size");
  j["num_attention_heads"] = "fourteen";
  j["use_sliding_window"] = true;
  j["hidden_act"] = "swish";
  try {
    ModelConfig::FromHfJson(j, "ckpt/config.json");
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ckpt/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing required field 'hidden_size'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'num_attention_heads' must be an integer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sliding-window"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hidden_act: 'swish'"), std::string::npos) << msg;
  }
}

TEST(ModelConfig, RejectsUnknownModelTypeAndRopeScaling) {
  Json j = Json::parse(kLlama);
  j["model_type"] = "phi3";
  j["rope_scaling"] = {{"rope_type", "longrope"}, {"factor", 4.0}};
  try {
    ModelConfig::FromHfJson(j);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.model_type: 'phi3' is not supported"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("rope_scaling.rope_type: 'longrope' is not supported"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelConfig, Llama3RopeNeedsItsFields) {
  Json j = Json::parse(kLlama);
  j["rope_scaling"].erase("low_freq_factor");
  try {
    ModelConfig::FromHfJson(j);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("rope_scaling: missing required field 'low_freq_factor'"),
              std::string::npos)
        << e.what();
  }
}

TEST(ModelConfig, ParsesGpt2) {
  const auto c = ModelConfig::FromHfJson(Json::parse(R"({
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768,
    "n_head": 12, "n_layer": 12, "n_positions": 1024, "vocab_size": 50257})"));
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.intermediate_size, 3072);  // n_inner absent: 4 * n_embd
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_TRUE(c.learned_positions);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.norm, ModelConfig::Norm::kLayerNorm);
  EXPECT_EQ(c.num_params(), 124439808);  // GPT-2 small, as published
}

TEST(ModelConfig, ParsesPythia) {
  const auto c = ModelConfig::FromHfJson(Json::parse(R"({
    "hidden_act": "gelu", "hidden_size": 768, "intermediate_size": 3072,
    "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neox",
    "num_attention_heads": 12, "num_hidden_layers": 12, "rotary_emb_base": 10000,
    "rotary_pct": 0.25, "tie_word_embeddings": false, "use_parallel_residual": true,
    "vocab_size": 50304})"));
  EXPECT_EQ(c.rope_dim(), 16);
  EXPECT_TRUE(c.parallel_residual);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_params(), 162322944);  // Pythia-160m, as published
}

TEST(ModelConfig, ParsesGemma2AndMistral) {
  const auto g = ModelConfig::FromHfJson(Json::parse(R"({
    "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "intermediate_size": 9216,
    "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096,
    "vocab_size": 256000})"));
  EXPECT_EQ(g.norm, ModelConfig::Norm::kRmsPlusOne);
  EXPECT_TRUE(g.sandwich_norm);
  EXPECT_TRUE(g.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(g.embedding_scale, 48.0);
  EXPECT_DOUBLE_EQ(g.attention_scale, 1.0 / 16);
  EXPECT_TRUE(g.IsSliding(0));
  EXPECT_FALSE(g.IsSliding(1));
  EXPECT_EQ(g.num_params(), 2614341888);  // Gemma-2-2B, as published
  const auto m = ModelConfig::FromHfJson(Json::parse(R"({
    "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
    "vocab_size": 32000})"));
  EXPECT_EQ(m.sliding_window, 4096);
  EXPECT_TRUE(m.IsSliding(1));
  EXPECT_EQ(m.num_params(), 7241732096);  // Mistral-7B-v0.1
}

TEST(ModelConfig, CheckpointTensorsFollowTheFamilyLayout) {
  const auto c = ModelConfig::FromHfJson(Json::parse(R"({"model_type": "gpt2", "n_embd": 8,
    "n_head": 2, "n_layer": 1, "n_positions": 16, "vocab_size": 11})"));
  const auto t = CheckpointTensors(c, "transformer.");
  ASSERT_EQ(t.size(), 16u);
  EXPECT_EQ(t[4].name, "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(t[4].shape, (std::vector<int64_t>{8, 24}));  // Conv1D: [in, out]
  EXPECT_EQ(t[4].stored, StoredAs::kTransposed);
  EXPECT_TRUE(IsIgnoredCheckpointTensor(c, "h.0.attn.bias"));
  EXPECT_FALSE(IsIgnoredCheckpointTensor(c, "h.0.attn.c_attn.bias"));
  EXPECT_EQ(CheckpointNamePrefix(c, {"transformer.wte.weight"}), "transformer.");
  EXPECT_EQ(CheckpointNamePrefix(c, {"wte.weight"}), "");
}

TEST(ModelConfig, FromParamsDemoDefaults) {
  const auto c = ModelConfig::FromParams(Json::object());
  EXPECT_EQ(c.vocab_size, 48);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.max_position_embeddings, 24);
  EXPECT_TRUE(c.Problems().empty());
}

TEST(ModelConfig, FromParamsProblems) {
  EXPECT_FALSE(ModelParamProblems({{"n_heads", 3}}).empty());  // 64 % 3
  EXPECT_FALSE(ModelParamProblems({{"n_kv_heads", 3}}).empty());
  EXPECT_FALSE(ModelParamProblems({{"mlp", "moe"}}).empty());
  EXPECT_FALSE(ModelParamProblems({{"d_modle", 64}}).empty());
  EXPECT_FALSE(ModelParamProblems({{"n_layers", 0}}).empty());
  EXPECT_TRUE(ModelParamProblems({{"n_kv_heads", 2}, {"qk_norm", true}}).empty());
}

}  // namespace
}  // namespace seedgrid
