#include "experiments/edit/fire.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "core/types.h"

namespace seedgrid::edit {
namespace {

int32_t Token(const Json& v, int64_t vocab_size, const char* what) {
  if (!v.is_number_integer())
    throw std::runtime_error(fmt::format("{}: {} is not a token id", what, v.dump()));
  const auto t = v.get<int64_t>();
  if (t < 0 || (vocab_size > 0 && t >= vocab_size))
    throw std::runtime_error(
        fmt::format("{}: token {} is outside the vocabulary [0, {})", what, t, vocab_size));
  return static_cast<int32_t>(t);
}

}  // namespace

Window ParseWindowLine(const std::string& line, int64_t vocab_size) {
  const Json j = Json::parse(line, nullptr, false);
  if (!j.is_object())
    throw std::runtime_error(
        "not a JSON object {\"tokens\": [...], \"positions\": [...], \"target\": t}");
  for (const char* key : {"tokens", "positions", "target"})
    if (!j.contains(key)) throw std::runtime_error(fmt::format("missing \"{}\"", key));
  for (const auto& [key, v] : j.items())
    if (key != "tokens" && key != "positions" && key != "target")
      throw std::runtime_error(
          fmt::format("unknown key \"{}\" (accepted: tokens, positions, target)", key));
  const Json& tokens = j["tokens"];
  const Json& positions = j["positions"];
  const Json& target = j["target"];
  if (!tokens.is_array() || tokens.empty())
    throw std::runtime_error("\"tokens\" must be a non-empty list of token ids");
  if (!positions.is_array() || positions.empty())
    throw std::runtime_error("\"positions\" must be a non-empty list of positions");
  if (target.is_array() && target.size() != positions.size())
    throw std::runtime_error(
        fmt::format("\"target\" has {} tokens for {} positions", target.size(), positions.size()));
  Window w;
  for (const auto& t : tokens) w.tokens.push_back(Token(t, vocab_size, "tokens"));
  std::vector<std::pair<int64_t, int32_t>> fire;
  for (size_t i = 0; i < positions.size(); ++i) {
    const Json& p = positions[i];
    if (!p.is_number_integer() || p.get<int64_t>() < 0 ||
        p.get<int64_t>() >= static_cast<int64_t>(w.tokens.size()))
      throw std::runtime_error(
          fmt::format("positions: {} is not a position in [0, {})", p.dump(), w.tokens.size()));
    fire.emplace_back(p.get<int64_t>(),
                      Token(target.is_array() ? target[i] : target, vocab_size, "target"));
  }
  std::sort(fire.begin(), fire.end());
  for (size_t i = 1; i < fire.size(); ++i)
    if (fire[i].first == fire[i - 1].first)
      throw std::runtime_error(fmt::format("positions: {} given twice", fire[i].first));
  for (const auto& [p, t] : fire) {
    w.fire.push_back(p);
    w.target.push_back(t);
  }
  return w;
}

std::vector<Window> ReadJsonlWindows(const std::string& path, int64_t vocab_size) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open the JSONL file", path));
  std::vector<Window> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back(ParseWindowLine(line, vocab_size));
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("{}:{}: {}", path, n, e.what()));
    }
  }
  if (out.empty()) throw std::runtime_error(fmt::format("{}: no windows", path));
  return out;
}

std::vector<Window> WindowsAfterToken(const std::vector<int32_t>& tokens, int64_t rows,
                                      int64_t seq_len, int32_t after, int32_t target) {
  if (static_cast<int64_t>(tokens.size()) != rows * seq_len)
    throw std::invalid_argument("WindowsAfterToken: tokens is not rows x seq_len");
  std::vector<Window> out;
  for (int64_t r = 0; r < rows; ++r) {
    Window w;
    w.tokens.assign(tokens.begin() + r * seq_len, tokens.begin() + (r + 1) * seq_len);
    for (int64_t p = 0; p < seq_len; ++p) {
      if (w.tokens[static_cast<size_t>(p)] != after) continue;
      w.fire.push_back(p);
      w.target.push_back(target);
    }
    if (!w.fire.empty()) out.push_back(std::move(w));
  }
  return out;
}

std::vector<Window> WindowsFromReservoir(const std::vector<int32_t>& tokens, int64_t k, int64_t w,
                                         int32_t target) {
  if (static_cast<int64_t>(tokens.size()) != k * w || w < 1 || w % 2 == 0)
    throw std::invalid_argument("WindowsFromReservoir: tokens is not k x w with w odd");
  const int64_t centre = w / 2;
  std::vector<Window> out;
  for (int64_t s = 0; s < k; ++s) {
    const int32_t* row = tokens.data() + s * w;
    if (row[centre] < 0) continue;  // an empty slot
    int64_t lo = centre, hi = centre + 1;
    while (lo > 0 && row[lo - 1] >= 0) --lo;
    while (hi < w && row[hi] >= 0) ++hi;
    Window win;
    win.tokens.assign(row + lo, row + hi);
    win.fire = {centre - lo};
    win.target = {target};
    out.push_back(std::move(win));
  }
  return out;
}

Windows SplitWindows(std::vector<Window> windows, int64_t n_eval, int64_t n_train) {
  const auto n = static_cast<int64_t>(windows.size());
  const int64_t need = n_eval + std::max<int64_t>(n_train, 1);
  if (n_eval < 1 || n < need)
    throw std::runtime_error(fmt::format(
        "{} windows with a fire position: {} held out and {} for training need at least {}", n,
        n_eval, n_train < 0 ? "all the rest (at least 1)" : fmt::format("{}", n_train), need));
  Windows out;
  const auto eval_end = windows.begin() + n_eval;
  const auto train_end = n_train < 0 ? windows.end() : eval_end + n_train;
  out.eval.assign(std::make_move_iterator(windows.begin()), std::make_move_iterator(eval_end));
  out.train.assign(std::make_move_iterator(eval_end), std::make_move_iterator(train_end));
  return out;
}

Packed Pack(const std::vector<Window>& windows, const std::vector<size_t>& which) {
  Packed p;
  p.rows = static_cast<int64_t>(which.size());
  for (size_t i : which) p.len = std::max(p.len, static_cast<int64_t>(windows.at(i).tokens.size()));
  const auto n = static_cast<size_t>(p.rows * p.len);
  p.tokens.assign(n, 0);
  p.role.assign(n, static_cast<int8_t>(Role::kPad));
  p.target.assign(n, -1);
  for (size_t r = 0; r < which.size(); ++r) {
    const Window& w = windows[which[r]];
    const size_t base = r * static_cast<size_t>(p.len);
    for (size_t t = 0; t < w.tokens.size(); ++t) {
      p.tokens[base + t] = w.tokens[t];
      p.role[base + t] = static_cast<int8_t>(Role::kSurrounding);
    }
    for (size_t f = 0; f < w.fire.size(); ++f) {
      const size_t at = base + static_cast<size_t>(w.fire[f]);
      p.role[at] = static_cast<int8_t>(Role::kFire);
      p.target[at] = w.target[f];
    }
  }
  return p;
}

}  // namespace seedgrid::edit
