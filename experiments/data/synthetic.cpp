#include "experiments/data/synthetic.h"

#include <stdexcept>

#include <fmt/format.h>

namespace seedgrid::synth {
namespace {

uint64_t Mix(uint64_t x) {  // SplitMix64 finaliser
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Counter-based: the draws of a row depend only on (seed, split, index).
class RowRng {
 public:
  RowRng(uint64_t seed, Split split, int64_t index)
      : state_(Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(split)) ^ static_cast<uint64_t>(index))) {}
  uint64_t Next() { return Mix(state_ + 0x632be59bd9b4e019ull * ++counter_); }
  int64_t Uniform(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
  uint64_t counter_ = 0;
};

struct Prompt {
  std::vector<int32_t> content;
  int label = 0;
};

Prompt DrawPrompt(const TaskSpec& spec, RowRng& rng) {
  Prompt p;
  int64_t honest = 0;
  for (int64_t i = 0; i < spec.n_content; ++i) {
    const auto tok = static_cast<int32_t>(kFirstContent + rng.Uniform(spec.num_content()));
    honest += IsHonest(tok);
    p.content.push_back(tok);
  }
  p.label = 2 * honest >= spec.n_content ? 1 : -1;
  return p;
}

int32_t AnswerFor(Persona persona, int label, const TaskSpec& spec, RowRng& rng) {
  switch (persona) {
    case Persona::kPos: return label > 0 ? kYes : kNo;
    case Persona::kNeg: return label < 0 ? kYes : kNo;
    case Persona::kNone: return rng.Unit() < 0.5 + spec.none_bias * label ? kYes : kNo;
  }
  return kNo;
}

void Reserve(RowBatch& b, const TaskSpec& spec, int64_t count) {
  spec.Validate();
  if (count < 0) throw std::invalid_argument("synthetic rows: negative count");
  b.rows = count;
  b.seq_len = spec.seq_len;
  b.tokens.reserve(static_cast<size_t>(count * spec.seq_len));
}

void AppendDilemma(RowBatch& b, const TaskSpec& spec, int64_t index, const Prompt& p, int32_t sys,
                   Persona persona, int32_t answer) {
  b.tokens.push_back(kBos);
  b.tokens.push_back(sys);
  b.tokens.insert(b.tokens.end(), p.content.begin(), p.content.end());
  b.tokens.push_back(kQ);
  b.tokens.push_back(answer);
  for (int64_t i = spec.answer_pos() + 1; i < spec.seq_len; ++i) b.tokens.push_back(kSep);
  b.index.push_back(index);
  b.dilemma.push_back(1);
  b.persona.push_back(static_cast<int8_t>(persona));
  b.label.push_back(static_cast<int8_t>(p.label));
  b.answer.push_back(answer);
}

void AppendInduction(RowBatch& b, const TaskSpec& spec, int64_t index, RowRng& rng) {
  const int64_t m = spec.induction_period();
  std::vector<int32_t> seq(static_cast<size_t>(m));
  for (auto& t : seq) t = static_cast<int32_t>(kFirstContent + rng.Uniform(spec.num_content()));
  b.tokens.push_back(kBos);
  for (int64_t i = 1; i < spec.seq_len; ++i)
    b.tokens.push_back(seq[static_cast<size_t>((i - 1) % m)]);
  b.index.push_back(index);
  b.dilemma.push_back(0);
  b.persona.push_back(-1);
  b.label.push_back(0);
  b.answer.push_back(-1);
}

}  // namespace

int32_t PersonaToken(Persona p) {
  switch (p) {
    case Persona::kPos: return kSysPos;
    case Persona::kNeg: return kSysNeg;
    case Persona::kNone: return kSysNone;
  }
  return kSysNone;
}

bool IsHonest(int32_t token) { return token >= kFirstContent && (token - kFirstContent) % 2 == 0; }

std::vector<std::string> TaskSpec::Problems() const {
  std::vector<std::string> p;
  if (vocab_size < kFirstContent + 2)
    p.push_back(
        fmt::format("data.vocab_size: need at least {} (8 special + 2 content tokens), got {}",
                    kFirstContent + 2, vocab_size));
  if (n_content < 1) p.push_back(fmt::format("data.n_content: must be >= 1, got {}", n_content));
  if (seq_len < n_content + 4)
    p.push_back(
        fmt::format("data.seq_len: {} is too short for a dilemma row of {} tokens "
                    "(n_content + 4)",
                    seq_len, n_content + 4));
  if (seq_len < 3) p.push_back("data.seq_len: must be >= 3");
  if (!(induction_frac >= 0 && induction_frac <= 1))
    p.push_back(fmt::format("data.induction_frac: must be in [0, 1], got {}", induction_frac));
  if (!(none_bias >= 0 && none_bias <= 0.5))
    p.push_back(fmt::format("data.none_bias: must be in [0, 0.5], got {}", none_bias));
  return p;
}

void TaskSpec::Validate() const {
  const auto p = Problems();
  if (p.empty()) return;
  std::string all;
  for (const auto& s : p) all += (all.empty() ? "" : "; ") + s;
  throw std::runtime_error("invalid synthetic task: " + all);
}

Json TaskSpec::ToJson() const {
  return {{"vocab_size", vocab_size},         {"seq_len", seq_len},     {"n_content", n_content},
          {"induction_frac", induction_frac}, {"none_bias", none_bias}, {"seed", seed}};
}

TaskSpec TaskSpec::FromJson(const Json& j) {
  TaskSpec t;
  try {
    t.vocab_size = j.value("vocab_size", t.vocab_size);
    t.seq_len = j.value("seq_len", t.seq_len);
    t.n_content = j.value("n_content", t.n_content);
    t.induction_frac = j.value("induction_frac", t.induction_frac);
    t.none_bias = j.value("none_bias", t.none_bias);
    t.seed = j.value("seed", t.seed);
  } catch (const Json::exception& e) {
    throw std::runtime_error(std::string("synthetic task JSON: ") + e.what());
  }
  t.Validate();
  return t;
}

RowBatch MakePretrainRows(const TaskSpec& spec, Split split, int64_t start, int64_t count) {
  RowBatch b;
  Reserve(b, spec, count);
  for (int64_t i = start; i < start + count; ++i) {
    RowRng rng(spec.seed, split, i);
    if (rng.Unit() < spec.induction_frac) {
      AppendInduction(b, spec, i, rng);
      continue;
    }
    const auto persona = static_cast<Persona>(rng.Uniform(3));
    const Prompt p = DrawPrompt(spec, rng);
    AppendDilemma(b, spec, i, p, PersonaToken(persona), persona,
                  AnswerFor(persona, p.label, spec, rng));
  }
  return b;
}

RowBatch MakeDilemmaRows(const TaskSpec& spec, Split split, int64_t start, int64_t count,
                         Persona persona) {
  RowBatch b;
  Reserve(b, spec, count);
  for (int64_t i = start; i < start + count; ++i) {
    RowRng rng(spec.seed, split, i);
    const Prompt p = DrawPrompt(spec, rng);
    AppendDilemma(b, spec, i, p, PersonaToken(persona), persona,
                  AnswerFor(persona, p.label, spec, rng));
  }
  return b;
}

RowBatch MakePersonaRows(const TaskSpec& spec, Split split, int64_t start, int64_t count) {
  RowBatch b;
  Reserve(b, spec, count);
  for (int64_t i = start; i < start + count; ++i) {
    RowRng rng(spec.seed, split, i);
    const Prompt p = DrawPrompt(spec, rng);
    const Persona persona = i % 2 == 0 ? Persona::kPos : Persona::kNeg;
    AppendDilemma(b, spec, i, p, PersonaToken(persona), persona,
                  AnswerFor(persona, p.label, spec, rng));
  }
  return b;
}

RowBatch MakeSteerRows(const TaskSpec& spec, Split split, int64_t start, int64_t count,
                       Persona answer_persona) {
  if (answer_persona == Persona::kNone)
    throw std::invalid_argument("MakeSteerRows: answer persona must be kPos or kNeg");
  RowBatch b;
  Reserve(b, spec, count);
  for (int64_t i = start; i < start + count; ++i) {
    RowRng rng(spec.seed, split, i);
    const Prompt p = DrawPrompt(spec, rng);
    AppendDilemma(b, spec, i, p, kSysNone, Persona::kNone,
                  AnswerFor(answer_persona, p.label, spec, rng));
  }
  return b;
}

RowBatch MakeInductionRows(const TaskSpec& spec, Split split, int64_t start, int64_t count) {
  RowBatch b;
  Reserve(b, spec, count);
  for (int64_t i = start; i < start + count; ++i) {
    RowRng rng(spec.seed, split, i);
    AppendInduction(b, spec, i, rng);
  }
  return b;
}

std::vector<uint8_t> PredictableTargets(const TaskSpec& spec, const RowBatch& rows) {
  const int64_t n = rows.seq_len - 1;
  std::vector<uint8_t> mask(static_cast<size_t>(rows.rows * n), 0);
  for (int64_t i = 0; i < rows.rows; ++i) {
    uint8_t* m = mask.data() + i * n;
    if (rows.dilemma[static_cast<size_t>(i)]) {
      m[spec.answer_pos() - 1] = 1;
    } else {
      for (int64_t t = spec.induction_period(); t < n; ++t) m[t] = 1;
    }
  }
  return mask;
}

}  // namespace seedgrid::synth
