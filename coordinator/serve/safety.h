// What keeps `seedgrid serve` safe to leave running: who may ask (a token off loopback), which
// files it may read (only under a sweep's out dir), and how text goes into HTML. Pure
// functions, unit-tested without a server (tests/serve/serve_safety_test.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace seedgrid::serve {

// True for addresses that only this machine can reach: 127.0.0.0/8, ::1, "localhost".
bool IsLoopbackBind(std::string_view bind);

// A random token (32 hex digits from /dev/urandom) for a server bound off loopback.
std::string GenerateToken();

// Compares in time independent of where the strings differ (a token is a secret).
bool TokenEquals(std::string_view given, std::string_view expected);

// `rel` (a URL path already percent-decoded once, '/'-separated) resolved under `root`, or
// nullopt when it could leave it: an absolute path, a "." or ".." component, an empty
// component, a backslash or NUL, or a symlink whose target lies outside `root`. The file need
// not exist (the caller answers 404 then).
std::optional<std::filesystem::path> ResolveUnder(const std::filesystem::path& root,
                                                  std::string_view rel);

// & < > " ' as entities: every string from the registry or a file that goes into HTML.
std::string HtmlEscape(std::string_view s);

// A shard id or id prefix: 1 to 64 lowercase hex digits.
bool IsShardIdText(std::string_view s);

}  // namespace seedgrid::serve
