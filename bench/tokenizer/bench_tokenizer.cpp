// Encode throughput of one tokenizer on one thread, the C++ side of bench/tokenizer/run.sh:
//   bench_tokenizer DIR CORPUS.jsonl IDS_OUT.jsonl [PASSES]
// Loads DIR, reads the corpus (one JSON string per line), encodes every line with special
// tokens once to warm up (the cold pass is timed too) and PASSES more times (default 3), writes
// the ids of the first pass to IDS_OUT (one JSON array per line, as `seedgrid tokenize
// --jsonl`), and prints one JSON line: bytes, cold seconds, median seconds of the warm passes.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/tokenizer.h"

using seedgrid::text::Tokenizer;
using Clock = std::chrono::steady_clock;

namespace {

double EncodeAll(const Tokenizer& tok, const std::vector<std::string>& texts,
                 std::vector<std::vector<int32_t>>* keep) {
  auto t0 = Clock::now();
  size_t total = 0;
  for (const auto& t : texts) {
    auto ids = tok.Encode(t, true);
    total += ids.size();
    if (keep) keep->push_back(std::move(ids));
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (total == 0) std::fprintf(stderr, "no ids\n");
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_tokenizer DIR CORPUS.jsonl IDS_OUT.jsonl [PASSES]\n");
    return 2;
  }
  int passes = argc > 4 ? std::stoi(argv[4]) : 3;
  try {
    auto load0 = Clock::now();
    Tokenizer tok = Tokenizer::FromDirectory(argv[1]);
    double load_s = std::chrono::duration<double>(Clock::now() - load0).count();
    std::ifstream in(argv[2]);
    if (!in) throw std::runtime_error(fmt::format("{}: cannot open", argv[2]));
    std::vector<std::string> texts;
    size_t bytes = 0;
    for (std::string line; std::getline(in, line);) {
      texts.push_back(nlohmann::json::parse(line).get<std::string>());
      bytes += texts.back().size();
    }
    std::vector<std::vector<int32_t>> ids;
    double cold = EncodeAll(tok, texts, &ids);
    std::vector<double> warm;
    for (int p = 0; p < passes; ++p) warm.push_back(EncodeAll(tok, texts, nullptr));
    std::sort(warm.begin(), warm.end());
    std::ofstream out(argv[3]);
    for (const auto& v : ids) out << nlohmann::json(v).dump() << '\n';
    if (!out) throw std::runtime_error(fmt::format("{}: write failed", argv[3]));
    fmt::print("{{\"bytes\": {}, \"load_s\": {:.3f}, \"cold_s\": {:.4f}, \"warm_s\": {:.4f}}}\n",
               bytes, load_s, cold, warm[warm.size() / 2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
