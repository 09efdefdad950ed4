// Prompt templates: how a (system, user, assistant) turn becomes the text a chat model was
// trained on, so a dataset's rows reach the model in its own format. No LibTorch.
//
// Presets follow the chat templates the families publish with their tokenizers (the Jinja
// `chat_template` of tokenizer_config.json), for one system message, one user turn and one
// assistant turn:
//   chatml  (Qwen2/2.5/3)  <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}
//                          <|im_end|>\n | <|im_start|>assistant\n | {assistant}<|im_end|>\n
//   llama3  (Llama-3.0)    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n
//                          {system}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{user}
//                          <|eot_id|> | <|start_header_id|>assistant<|end_header_id|>\n\n |
//                          {assistant}<|eot_id|>
//   llama2  (Llama-2-chat) <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] | (no tail) |
//                           {assistant} </s>      (user and assistant stripped, as the template)
//   gemma   (Gemma 3)      <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n |
//                          <start_of_turn>model\n | {assistant}<end_of_turn>\n
//   plain                  {system}\n\n{user} | (no tail) | {assistant}
// ("|" separates the prompt, the generation tail and the response.) Without a system message
// (empty), its block is left out (chatml, llama3, llama2) or its prefix is (gemma, plain). The
// defaults some templates insert when no system message is given (Qwen2.5's "You are Qwen…",
// Llama-3.1's knowledge-date header) are not: say them in the data when you want them.
//
// A custom template is one string with {user} and {assistant} slots and an optional {system}
// slot; the prompt is everything before {assistant}, the response {assistant} and what follows.
// The generation tail of a custom template is empty: write the assistant header before
// {assistant}.
//
// Tokenizing: when the template writes the BOS token itself (llama3, llama2, gemma), encode its
// text without the tokenizer's post-processor specials (HF's apply_chat_template does the same);
// the other templates leave them to the post-processor (has_bos() says which).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace seedgrid::text {

class TemplateError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class PromptTemplate {
 public:
  // "chatml", "llama3", "llama2", "gemma", "plain"; TemplateError names the accepted ones.
  static PromptTemplate Preset(std::string_view name);
  // Throws TemplateError when {user} or {assistant} is missing or given twice, or {assistant}
  // comes before {user}.
  static PromptTemplate Custom(std::string_view text);
  // A spec's `template:` value: a preset name or {custom: "..."}.
  static PromptTemplate FromJson(const nlohmann::json& j);
  static std::vector<std::string> PresetNames();

  // The text before the model's answer; with generation_prompt, the assistant header follows.
  std::string Prompt(std::string_view system, std::string_view user, bool generation_prompt) const;
  // The assistant's turn after the header: the answer and the end-of-turn marker.
  std::string Response(std::string_view assistant) const;
  // Prompt(system, user, true) + Response(assistant).
  std::string Conversation(std::string_view system, std::string_view user,
                           std::string_view assistant) const;

  bool has_bos() const { return has_bos_; }
  // "chatml", ..., or "custom:<text>": what the token cache is keyed by.
  std::string Identity() const;

 private:
  PromptTemplate() = default;
  std::string name_;
  std::string with_system_;     // prompt text with {system} and {user} slots
  std::string without_system_;  // with {user} only
  std::string tail_;            // the generation prompt
  std::string response_;        // with an {assistant} slot
  bool strip_ = false;          // llama2: user and assistant text stripped of surrounding spaces
  bool has_bos_ = false;
};

}  // namespace seedgrid::text
