#include "text/template.h"

#include <nlohmann/json.hpp>

#include <array>

namespace seedgrid::text {
namespace {

std::string_view Strip(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\v\f";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

// Replaces each {slot} of `slots` in one left-to-right pass (a value's own braces stay as they
// are).
std::string Fill(std::string_view text,
                 std::initializer_list<std::pair<std::string_view, std::string_view>> slots) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    bool hit = false;
    if (text[i] == '{') {
      for (const auto& [slot, value] : slots) {
        if (text.substr(i, slot.size()) == slot) {
          out += value;
          i += slot.size();
          hit = true;
          break;
        }
      }
    }
    if (!hit) out += text[i++];
  }
  return out;
}

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

struct PresetText {
  const char* name;
  const char* with_system;
  const char* without_system;
  const char* tail;
  const char* response;
  bool strip;
  bool has_bos;
};

constexpr std::array<PresetText, 5> kPresets = {{
    {"chatml", "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n",
     "<|im_start|>user\n{user}<|im_end|>\n", "<|im_start|>assistant\n", "{assistant}<|im_end|>\n",
     false, false},
    {"llama3",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>",
     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>",
     "<|start_header_id|>assistant<|end_header_id|>\n\n", "{assistant}<|eot_id|>", true, true},
    {"llama2", "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]",
     "<s>[INST] {user} [/INST]", "", " {assistant} </s>", true, true},
    {"gemma", "<bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n",
     "<bos><start_of_turn>user\n{user}<end_of_turn>\n", "<start_of_turn>model\n",
     "{assistant}<end_of_turn>\n", true, true},
    {"plain", "{system}\n\n{user}", "{user}", "", "{assistant}", false, false},
}};

}  // namespace

std::vector<std::string> PromptTemplate::PresetNames() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  return names;
}

PromptTemplate PromptTemplate::Preset(std::string_view name) {
  for (const auto& p : kPresets) {
    if (name != p.name) continue;
    PromptTemplate t;
    t.name_ = p.name;
    t.with_system_ = p.with_system;
    t.without_system_ = p.without_system;
    t.tail_ = p.tail;
    t.response_ = p.response;
    t.strip_ = p.strip;
    t.has_bos_ = p.has_bos;
    return t;
  }
  throw TemplateError("template: '" + std::string(name) +
                      "' is not chatml, llama3, llama2, gemma, plain or {custom: \"...\"}");
}

PromptTemplate PromptTemplate::Custom(std::string_view text) {
  for (std::string_view slot : {"{user}", "{assistant}"})
    if (Count(text, slot) != 1)
      throw TemplateError("template.custom: needs exactly one " + std::string(slot) + " slot");
  if (Count(text, "{system}") > 1)
    throw TemplateError("template.custom: {system} may appear at most once");
  const size_t at = text.find("{assistant}");
  const size_t system_at = text.find("{system}");
  if (text.find("{user}") > at || (system_at != std::string_view::npos && system_at > at))
    throw TemplateError("template.custom: {system} and {user} must come before {assistant}");
  PromptTemplate t;
  t.name_ = "custom:" + std::string(text);
  t.with_system_ = std::string(text.substr(0, at));
  t.without_system_ = t.with_system_;
  t.response_ = std::string(text.substr(at));
  return t;
}

PromptTemplate PromptTemplate::FromJson(const nlohmann::json& j) {
  if (j.is_string()) return Preset(j.get<std::string>());
  if (j.is_object() && j.size() == 1 && j.contains("custom") && j["custom"].is_string())
    return Custom(j["custom"].get<std::string>());
  throw TemplateError("template: " + j.dump() +
                      " is not a preset name (chatml, llama3, llama2, gemma, plain) or "
                      "{custom: \"...{user}...{assistant}...\"}");
}

std::string PromptTemplate::Prompt(std::string_view system, std::string_view user,
                                   bool generation_prompt) const {
  const std::string_view u = strip_ ? Strip(user) : user;
  std::string out = system.empty() ? Fill(without_system_, {{"{user}", u}, {"{system}", ""}})
                                   : Fill(with_system_, {{"{system}", system}, {"{user}", u}});
  if (generation_prompt) out += tail_;
  return out;
}

std::string PromptTemplate::Response(std::string_view assistant) const {
  return Fill(response_, {{"{assistant}", strip_ ? Strip(assistant) : assistant}});
}

std::string PromptTemplate::Conversation(std::string_view system, std::string_view user,
                                         std::string_view assistant) const {
  return Prompt(system, user, true) + Response(assistant);
}

std::string PromptTemplate::Identity() const { return name_; }

}  // namespace seedgrid::text
