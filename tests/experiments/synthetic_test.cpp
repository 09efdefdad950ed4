#include "experiments/data/synthetic.h"

#include <gtest/gtest.h>

#include "experiments/data/tokens.h"
#include "tests/experiments/test_context.h"

namespace seedgrid::synth {
namespace {

TEST(Synthetic, RowsAreAPureFunctionOfSeedSplitIndex) {
  TaskSpec t;
  const auto a = MakePretrainRows(t, Split::kPretrain, 100, 50);
  const auto b = MakePretrainRows(t, Split::kPretrain, 120, 10);
  for (int64_t i = 0; i < 10; ++i)
    EXPECT_TRUE(std::equal(b.row(i), b.row(i) + t.seq_len, a.row(20 + i)));
  EXPECT_EQ(a.tokens, MakePretrainRows(t, Split::kPretrain, 100, 50).tokens);
  EXPECT_NE(a.tokens, MakePretrainRows(t, Split::kPretrainEval, 100, 50).tokens);
  TaskSpec other = t;
  other.seed = 7;
  EXPECT_NE(a.tokens, MakePretrainRows(other, Split::kPretrain, 100, 50).tokens);
}

TEST(Synthetic, DilemmaLayoutAndRule) {
  TaskSpec t;
  const auto pos = MakeDilemmaRows(t, Split::kPretrain, 0, 200, Persona::kPos);
  const auto neg = MakeDilemmaRows(t, Split::kPretrain, 0, 200, Persona::kNeg);
  int64_t plus = 0;
  for (int64_t i = 0; i < pos.rows; ++i) {
    const int32_t* r = pos.row(i);
    EXPECT_EQ(r[0], kBos);
    EXPECT_EQ(r[1], kSysPos);
    EXPECT_EQ(neg.row(i)[1], kSysNeg);
    int honest = 0;
    for (int64_t j = 2; j < 2 + t.n_content; ++j) {
      EXPECT_GE(r[j], kFirstContent);
      EXPECT_LT(r[j], t.vocab_size);
      EXPECT_EQ(r[j], neg.row(i)[j]);  // same prompt under both personas
      honest += IsHonest(r[j]);
    }
    const int h = 2 * honest >= t.n_content ? 1 : -1;
    EXPECT_EQ(pos.label[i], h);
    EXPECT_EQ(r[t.answer_pos() - 1], kQ);
    EXPECT_EQ(r[t.answer_pos()], h > 0 ? kYes : kNo);
    EXPECT_EQ(neg.row(i)[t.answer_pos()], h < 0 ? kYes : kNo);
    for (int64_t j = t.answer_pos() + 1; j < t.seq_len; ++j) EXPECT_EQ(r[j], kSep);
    plus += h > 0;
  }
  EXPECT_GT(plus, 100);  // P(h=+1) = P(Bin(8, .5) >= 4) ~ 0.64
  EXPECT_LT(plus, 160);
}

TEST(Synthetic, SteerRowsStripPersonaAndShareprompts) {
  TaskSpec t;
  const auto pos = MakeSteerRows(t, Split::kSteerTrain, 0, 64, Persona::kPos);
  const auto neg = MakeSteerRows(t, Split::kSteerTrain, 0, 64, Persona::kNeg);
  for (int64_t i = 0; i < pos.rows; ++i) {
    EXPECT_EQ(pos.row(i)[1], kSysNone);
    EXPECT_EQ(neg.row(i)[1], kSysNone);
    EXPECT_TRUE(std::equal(pos.row(i), pos.row(i) + t.answer_pos(), neg.row(i)));
    EXPECT_NE(pos.answer[i], neg.answer[i]);  // the personas always disagree
    EXPECT_EQ(pos.answer[i], pos.label[i] > 0 ? kYes : kNo);
  }
  EXPECT_THROW(MakeSteerRows(t, Split::kSteerTrain, 0, 1, Persona::kNone), std::invalid_argument);
}

TEST(Synthetic, InductionRowsRepeat) {
  TaskSpec t;
  const auto rows = MakeInductionRows(t, Split::kNeutral, 0, 20);
  const int64_t m = t.induction_period();
  for (int64_t i = 0; i < rows.rows; ++i) {
    const int32_t* r = rows.row(i);
    EXPECT_EQ(r[0], kBos);
    for (int64_t j = 1 + m; j < t.seq_len; ++j) EXPECT_EQ(r[j], r[j - m]);
  }
}

TEST(Synthetic, PretrainMixHasAllRowKinds) {
  TaskSpec t;
  const auto rows = MakePretrainRows(t, Split::kPretrain, 0, 600);
  int64_t induction = 0, per[3] = {0, 0, 0};
  for (int64_t i = 0; i < rows.rows; ++i) {
    if (!rows.dilemma[i]) {
      ++induction;
      continue;
    }
    ++per[rows.persona[i]];
    EXPECT_EQ(rows.row(i)[1], PersonaToken(static_cast<Persona>(rows.persona[i])));
  }
  EXPECT_NEAR(induction, 300, 60);
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(per[k], 100, 40);
}

TEST(Synthetic, ValidatesSpec) {
  TaskSpec t;
  t.seq_len = 10;  // < n_content + 4
  t.vocab_size = 9;
  t.induction_frac = 2;
  const auto p = t.Problems();
  EXPECT_EQ(p.size(), 3u);
  EXPECT_THROW(MakePretrainRows(t, Split::kPretrain, 0, 1), std::runtime_error);
  EXPECT_EQ(TaskSpec::FromJson(TaskSpec{}.ToJson()).ToJson(), TaskSpec{}.ToJson());
}

TEST(TokenDataset, FileRoundTripAndRangeChecks) {
  testing::TempDir dir;
  TaskSpec t;
  const auto rows = MakePretrainRows(t, Split::kHarvest, 0, 30);
  const std::string path = (dir.path() / "tokens.h5").string();
  {
    H5Writer w(path);
    WriteTokenDataset(w, "tokens", rows.tokens, rows.rows, rows.seq_len, t.vocab_size, t.ToJson());
    w.Close();
  }
  const auto src = TokenSource::File(path, "tokens", t.vocab_size);
  EXPECT_EQ(src.size(), 30);
  EXPECT_EQ(src.seq_len(), t.seq_len);
  EXPECT_EQ(src.Rows(0, 30), rows.tokens);
  EXPECT_THROW(src.Rows(25, 10), std::out_of_range);
  EXPECT_THROW(TokenSource::File(path, "tokens", 10), std::runtime_error);  // tokens >= 10
  EXPECT_THROW(TokenSource::File(path, "nope", 0), std::runtime_error);
  const auto synth_src = TokenSource::Synthetic(t, Split::kHarvest);
  EXPECT_EQ(synth_src.Rows(0, 30), rows.tokens);
}

}  // namespace
}  // namespace seedgrid::synth
