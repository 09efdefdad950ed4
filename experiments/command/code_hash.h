// The content digest behind a command stage's `code:` key: what makes an edited script change
// the shard ids, so a sweep recomputes what the edit touched instead of reusing stale results.
//
// Patterns are paths or glob(3) patterns, relative to the spec file's directory (or absolute);
// a directory stands for every regular file under it. The digest covers each file's path
// relative to that directory (absolute for files outside it) and its bytes, in sorted order,
// so it does not depend on where the checkout lives, only on what the files say.
#pragma once

#include <string>
#include <vector>

namespace seedgrid::command {

struct CodeDigest {
  std::string hex;                    // Sha256, 64 hex digits; "" when there are no patterns
  std::vector<std::string> files;     // what was hashed (relative paths), sorted
  std::vector<std::string> problems;  // "code[1]: 'src/*.py' matches no file under /x"
};

CodeDigest DigestCode(const std::vector<std::string>& patterns, const std::string& base_dir);

}  // namespace seedgrid::command
