// Placeholders of a command stage: `{dotted.key}` for any resolved param, and the names the
// runner knows ({seed}, {shard_id}, {out}, {needs.<stage>.dir}, ...; docs/command.md lists
// them). Two steps, both pure: Check at plan time (an unknown name is a spec error, exit 2,
// file:line), Expand at run time, when the shard id and the attempt's directories exist.
//
// Syntax: `{name}` anywhere in a string; `{{` and `}}` are a literal brace. A name is made of
// letters, digits, '_', '-' and '.'; anything else between braces is an error, so a typo never
// reaches the command as literal text.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/types.h"

namespace seedgrid::command {

// The names the runner provides besides params (without the needs.* ones).
const std::vector<std::string>& RuntimeNames();

// The placeholder names in `text`, in order; a syntax error is thrown as std::invalid_argument
// ("unclosed '{' at column 4").
std::vector<std::string> PlaceholderNames(const std::string& text);

// Problems with `text` ("unknown placeholder '{lrr}' (...)"), given the params (with the axis
// keys, which hold a value per shard) and the stage's needs. Empty when all is well.
std::vector<std::string> CheckTemplate(const std::string& text, const Json& params,
                                       const std::vector<std::string>& axis_keys,
                                       const std::vector<std::string>& needs);

// `text` with each placeholder replaced by lookup(name) (nullopt: an unknown name, thrown as
// std::invalid_argument: it passed the plan-time check, so this is a bug or a changed spec).
std::string ExpandTemplate(
    const std::string& text,
    const std::function<std::optional<std::string>(const std::string&)>& lookup);

// A param as placeholder text: a string as is, a number or bool as JSON, anything else as
// compact JSON. nullopt when the dotted key is not in params.
std::optional<std::string> ParamText(const Json& params, const std::string& dotted);

}  // namespace seedgrid::command
