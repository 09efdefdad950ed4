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
  j["model_type"] = "mistral";
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  try {
    ModelConfig::FromHfJson(j);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'mistral' is not supported"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("type 'yarn' is not supported"), std::string::npos);
  }
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
