// The embedded synthetic task (research/spd_ws.md §5): persona-conditioned yes/no "dilemma"
// rows plus induction rows, over a tiny vocabulary. No LibTorch.
//
// Every row is a pure function of (data seed, split, row index) through a counter-based RNG,
// so any shard can build any index range, two splits never share draws, and the same
// (seed, split, index) gives the same row on every machine.
//
// Vocabulary: 8 special tokens, then content tokens kFirstContent .. vocab_size-1. A content
// token is "honest" when (token - kFirstContent) is even (a fixed half of the content set).
//
// Row layouts (T = seq_len, n = n_content):
//   dilemma    BOS SYS c1 .. cn Q ANS SEP .. SEP      ANS at index answer_pos() = n + 3
//              h = +1 when at least half of c1..cn are honest (2·count >= n), else -1.
//              ANS under SYS_POS: YES iff h = +1; SYS_NEG: YES iff h = -1;
//              SYS_NONE: YES with probability 0.5 + none_bias·h (drawn from the row's RNG).
//   induction  BOS x1 .. xm x1 .. xm x1 ..            m = induction_period() = (T - 1) / 2,
//              the random content sequence repeated cyclically to fill the row.
//   steering   a dilemma prompt with SYS_NONE (the persona stripped) whose ANS is the one the
//              POS (or NEG) persona gives; the same index gives the same prompt for both.
// The logits that predict ANS are those at position answer_pos() - 1 (the Q token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace seedgrid::synth {

inline constexpr int32_t kBos = 0;
inline constexpr int32_t kSep = 1;
inline constexpr int32_t kQ = 2;
inline constexpr int32_t kYes = 3;
inline constexpr int32_t kNo = 4;
inline constexpr int32_t kSysPos = 5;
inline constexpr int32_t kSysNeg = 6;
inline constexpr int32_t kSysNone = 7;
inline constexpr int32_t kFirstContent = 8;
inline constexpr int32_t kNumSpecial = 8;

enum class Persona : int8_t { kPos = 0, kNeg = 1, kNone = 2 };
int32_t PersonaToken(Persona p);
bool IsHonest(int32_t token);

// Independent row streams.
enum class Split : uint64_t {
  kPretrain = 1,      // pretraining mix
  kPretrainEval = 2,  // task accuracy after pretraining
  kSteerTrain = 3,    // θ+/θ− training prompts
  kSteerEval = 4,     // held-out steering evaluation prompts
  kNeutral = 5,       // neutral text (induction rows) for KL
  kHarvest = 6,       // activation harvesting
};

struct TaskSpec {
  int64_t vocab_size = 48;
  int64_t seq_len = 24;
  int64_t n_content = 8;
  double induction_frac = 0.5;  // share of induction rows in the pretraining mix
  double none_bias = 0.2;       // SYS_NONE answers YES with p = 0.5 + none_bias·h
  uint64_t seed = 0;            // the data seed (separate from a shard's training seed)

  int64_t num_content() const { return vocab_size - kFirstContent; }
  int64_t answer_pos() const { return n_content + 3; }
  int64_t induction_period() const { return (seq_len - 1) / 2; }

  std::vector<std::string> Problems() const;  // "data.<key>: message" each
  void Validate() const;                      // throws std::runtime_error

  // Stored in checkpoints' config.json under "seedgrid_task" so a steering run uses the task
  // its base model learned.
  Json ToJson() const;
  static TaskSpec FromJson(const Json& j);  // keys as ToJson; throws on a bad value
};

// Rows plus what each one is. tokens is row-major int32 [rows, seq_len].
struct RowBatch {
  int64_t rows = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> tokens;
  std::vector<int64_t> index;   // row index within its split
  std::vector<int8_t> dilemma;  // 1 dilemma/steering row, 0 induction row
  std::vector<int8_t> persona;  // Persona of the SYS token (kNone for steering rows); -1 induction
  std::vector<int8_t> label;    // h = +1 / -1; 0 for induction rows
  std::vector<int32_t> answer;  // the ANS token written in the row; -1 for induction rows

  const int32_t* row(int64_t i) const { return tokens.data() + i * seq_len; }
};

// Pretraining mix: each row is an induction row with probability induction_frac, else a
// dilemma row with persona uniform over POS, NEG, NONE.
RowBatch MakePretrainRows(const TaskSpec& spec, Split split, int64_t start, int64_t count);
// Dilemma rows under persona POS or NEG (alternating by index): task accuracy.
RowBatch MakePersonaRows(const TaskSpec& spec, Split split, int64_t start, int64_t count);
// Dilemma rows with the given persona for every row.
RowBatch MakeDilemmaRows(const TaskSpec& spec, Split split, int64_t start, int64_t count,
                         Persona persona);
// Steering rows: SYS_NONE prompt, ANS as `answer_persona` (kPos or kNeg) would answer.
RowBatch MakeSteerRows(const TaskSpec& spec, Split split, int64_t start, int64_t count,
                       Persona answer_persona);
RowBatch MakeInductionRows(const TaskSpec& spec, Split split, int64_t start, int64_t count);

// Which next-token targets are learnable, row-major [rows, seq_len - 1] (element t is the target
// token t + 1): the ANS of dilemma rows and the repeated part of induction rows (targets at index
// > induction_period()). Random content tokens are pure noise to a next-token loss; pretraining
// on these targets only learns the task in a few hundred steps instead of rarely.
std::vector<uint8_t> PredictableTargets(const TaskSpec& spec, const RowBatch& rows);

}  // namespace seedgrid::synth
