#include "text/regex.h"

#include <oniguruma.h>

#include <memory>
#include <mutex>
#include <stdexcept>

#include "text/unicode.h"

namespace seedgrid::text {

namespace {

void InitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

struct RegionDeleter {
  void operator()(OnigRegion* r) const { onig_region_free(r, 1); }
};

}  // namespace

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
  InitOnce();
  OnigErrorInfo info;
  OnigRegex reg = nullptr;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern_.data());
  int rc = onig_new(&reg, p, p + pattern_.size(), ONIG_OPTION_CAPTURE_GROUP, ONIG_ENCODING_UTF8,
                    ONIG_SYNTAX_RUBY, &info);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &info);
    throw std::invalid_argument("bad regex /" + pattern_ +
                                "/: " + reinterpret_cast<const char*>(msg));
  }
  regex_ = reg;
}

Regex::~Regex() { onig_free(static_cast<OnigRegex>(regex_)); }

std::vector<std::pair<size_t, size_t>> Regex::FindAll(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> spans;
  std::unique_ptr<OnigRegion, RegionDeleter> region(onig_region_new());
  const auto* begin = reinterpret_cast<const OnigUChar*>(s.data());
  const auto* end = begin + s.size();
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = onig_search(static_cast<OnigRegex>(regex_), begin, end, begin + pos, end, region.get(),
                         ONIG_OPTION_NONE);
    if (rc == ONIG_MISMATCH) break;
    if (rc < 0) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, rc);
      throw std::runtime_error("regex /" + pattern_ +
                               "/ failed: " + reinterpret_cast<const char*>(msg));
    }
    auto b = static_cast<size_t>(region->beg[0]);
    auto e = static_cast<size_t>(region->end[0]);
    if (e > b) {
      spans.emplace_back(b, e);
      pos = e;
    } else {  // an empty match: step over one character
      if (b >= s.size()) break;
      pos = b + Utf8SeqLen(static_cast<unsigned char>(s[b]));
    }
  }
  return spans;
}

}  // namespace seedgrid::text
