// Where an edit fires: token windows and, in each, the positions whose next-token prediction the
// edit should change, with the token it should predict there. No LibTorch, so the rules are
// tested on their own (experiments/edit/edit_test.cpp).
//
// A fire position p of a window means: the logits at p (which predict token p + 1) should
// predict `target`. Every other position of the window is a "surrounding" position, where the
// edit should leave the model's distribution as it was (the KL term of the loss and the metric
// kl_surrounding). Windows may differ in length; Pack pads them on the right (a causal model's
// earlier positions do not see the padding) and marks the padding, which no term reads.
//
// Sources (params fire.source, docs/edit.md):
//   jsonl    one window per line: {"tokens": [..], "positions": [..], "target": t} where
//            "target" is one token for every position or a list parallel to "positions";
//   rule     "after token X": every position holding X fires, the target is fire.target;
//            applied to the synthetic task's rows or to a token HDF5's rows;
//   harvest  the reservoir examples of one component of a harvest shard: the position the
//            component fired at, in its context window (fire.target the token to predict).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace seedgrid::edit {

struct Window {
  std::vector<int32_t> tokens;
  std::vector<int64_t> fire;    // ascending, unique, each in [0, tokens.size())
  std::vector<int32_t> target;  // the token to predict at each fire position
};

// One JSONL line (a Window; tokens in [0, vocab_size), vocab_size <= 0: unchecked). Throws
// std::runtime_error saying what is wrong with it.
Window ParseWindowLine(const std::string& line, int64_t vocab_size);
// Every non-blank line of `path`; errors are "path:line: message".
std::vector<Window> ReadJsonlWindows(const std::string& path, int64_t vocab_size);

// The rule "after token X": each of the `rows` row-major windows [rows, seq_len] that holds
// `after` somewhere, firing at every position that holds it; rows without it are left out.
std::vector<Window> WindowsAfterToken(const std::vector<int32_t>& tokens, int64_t rows,
                                      int64_t seq_len, int32_t after, int32_t target);

// The harvest source: the filled reservoir slots of one component, tokens [K, W] (W = 2·context
// + 1, -1 outside the row or in an empty slot), each a window firing at its centre (the position
// the component fired at), cut to the tokens inside the row.
std::vector<Window> WindowsFromReservoir(const std::vector<int32_t>& tokens, int64_t k, int64_t w,
                                         int32_t target);

// Held-out and training windows: the first n_eval windows are held out (the same for every
// n_train, so runs that differ only in n_train are measured on the same positions); training
// uses the next n_train (n_train < 0: all the rest). Throws std::runtime_error when there are
// not enough windows, saying how many there are.
struct Windows {
  std::vector<Window> train, eval;
};
Windows SplitWindows(std::vector<Window> windows, int64_t n_eval, int64_t n_train);

// Roles of the positions of a packed batch.
enum class Role : int8_t { kPad = -1, kSurrounding = 0, kFire = 1 };

// Windows `which` of `windows`, right-padded to the longest: tokens [rows, len] (pad: 0), role
// [rows, len], target [rows, len] (-1 where the role is not kFire).
struct Packed {
  int64_t rows = 0, len = 0;
  std::vector<int32_t> tokens;
  std::vector<int8_t> role;
  std::vector<int32_t> target;
};
Packed Pack(const std::vector<Window>& windows, const std::vector<size_t>& which);

}  // namespace seedgrid::edit
