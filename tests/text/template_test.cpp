// Prompt templates against the strings the families' published chat templates render
// (tokenizer_config.json's chat_template, add_generation_prompt=True) for one system message,
// one user turn and, where given, one assistant turn.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/template.h"

namespace seedgrid::text {
namespace {

TEST(PromptTemplate, ChatmlAsQwen) {
  const auto t = PromptTemplate::Preset("chatml");
  EXPECT_EQ(t.Prompt("Be brief.", "Is water wet?", true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nIs water wet?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.Prompt("", "Hi", false), "<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(t.Conversation("", "Hi", "Hello."),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n");
  EXPECT_FALSE(t.has_bos());
}

TEST(PromptTemplate, Llama3TrimsContentAndWritesBos) {
  const auto t = PromptTemplate::Preset("llama3");
  EXPECT_EQ(t.Conversation("Be brief.", " Is water wet? ", "Yes.\n"),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nIs water wet?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nYes.<|eot_id|>");
  EXPECT_EQ(t.Prompt("", "Hi", false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  EXPECT_TRUE(t.has_bos());
}

TEST(PromptTemplate, Llama2FoldsTheSystemIntoTheFirstInst) {
  const auto t = PromptTemplate::Preset("llama2");
  EXPECT_EQ(t.Prompt("Be brief.", "Is water wet?", true),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nIs water wet? [/INST]");
  EXPECT_EQ(t.Conversation("", " Hi ", " Hello. "), "<s>[INST] Hi [/INST] Hello. </s>");
}

TEST(PromptTemplate, GemmaPrefixesTheSystemToTheUserTurn) {
  const auto t = PromptTemplate::Preset("gemma");
  EXPECT_EQ(t.Prompt("Be brief.", "Is water wet?", true),
            "<bos><start_of_turn>user\nBe brief.\n\nIs water wet?<end_of_turn>\n"
            "<start_of_turn>model\n");
  EXPECT_EQ(
      t.Conversation("", "Hi", "Hello."),
      "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n");
}

TEST(PromptTemplate, PlainConcatenates) {
  const auto t = PromptTemplate::Preset("plain");
  EXPECT_EQ(t.Prompt("Persona.", "Q: ok? A:", true), "Persona.\n\nQ: ok? A:");
  EXPECT_EQ(t.Conversation("", "Q: ok? A:", " yes"), "Q: ok? A: yes");
}

TEST(PromptTemplate, CustomSplitsAtTheAssistantSlot) {
  const auto t = PromptTemplate::FromJson(
      nlohmann::json::parse(R"({"custom": "### {system}\nUser: {user}\nBot:{assistant}\n"})"));
  EXPECT_EQ(t.Prompt("S", "{assistant} in a row stays", true),
            "### S\nUser: {assistant} in a row stays\nBot:");
  EXPECT_EQ(t.Response(" yes"), " yes\n");
  EXPECT_EQ(t.Prompt("", "u", true), "### \nUser: u\nBot:");
}

TEST(PromptTemplate, RejectsWhatItCannotUse) {
  EXPECT_THROW(PromptTemplate::Preset("vicuna"), TemplateError);
  EXPECT_THROW(PromptTemplate::Custom("{user} only"), TemplateError);
  EXPECT_THROW(PromptTemplate::Custom("{assistant} {user}"), TemplateError);
  EXPECT_THROW(PromptTemplate::Custom("{user}{assistant}{system}"), TemplateError);
  EXPECT_THROW(PromptTemplate::FromJson(nlohmann::json(3)), TemplateError);
  try {
    PromptTemplate::Preset("vicuna");
  } catch (const TemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("chatml, llama3, llama2, gemma, plain"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace seedgrid::text
