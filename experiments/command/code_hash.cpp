#include "experiments/command/code_hash.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "core/hash.h"

namespace seedgrid::command {
namespace {

namespace fs = std::filesystem;

// glob(3) of one pattern; the matches as absolute paths.
std::vector<std::string> Glob(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), GLOB_NOSORT | GLOB_BRACE, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;
}

void AddFile(const fs::path& p, const fs::path& base,
             std::set<std::pair<std::string, std::string>>& files) {
  fs::path rel = p.lexically_relative(base);
  const bool inside = !rel.empty() && *rel.begin() != "..";
  files.insert({(inside ? rel : p).generic_string(), p.string()});
}

}  // namespace

CodeDigest DigestCode(const std::vector<std::string>& patterns, const std::string& base_dir) {
  CodeDigest d;
  if (patterns.empty()) return d;
  const fs::path base = fs::path(base_dir).lexically_normal();
  std::set<std::pair<std::string, std::string>> files;  // (relative name, absolute path)
  for (size_t i = 0; i < patterns.size(); ++i) {
    const fs::path pat =
        fs::path(patterns[i]).is_absolute() ? fs::path(patterns[i]) : base / patterns[i];
    const auto matches = Glob(pat.lexically_normal().string());
    size_t before = files.size();
    for (const auto& m : matches) {
      std::error_code ec;
      if (fs::is_directory(m, ec)) {
        for (auto it = fs::recursive_directory_iterator(m, ec); !ec && it != fs::end(it);
             it.increment(ec)) {
          if (it->is_regular_file(ec)) AddFile(it->path().lexically_normal(), base, files);
        }
      } else if (fs::is_regular_file(m, ec)) {
        AddFile(fs::path(m).lexically_normal(), base, files);
      }
    }
    if (files.size() == before) {
      d.problems.push_back(
          fmt::format("code[{}]: '{}' matches no file under {}", i, patterns[i], base.string()));
    }
  }
  Sha256 h;
  h.Update("seedgrid-code:1\n");
  for (const auto& [name, path] : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      d.problems.push_back(fmt::format("code: cannot read {}", path));
      continue;
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    h.Update(fmt::format("{}:{}:{}:", name.size(), name, bytes.size())).Update(bytes).Update("\n");
    d.files.push_back(name);
  }
  d.hex = h.HexDigest();
  return d;
}

}  // namespace seedgrid::command
