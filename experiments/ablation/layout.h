// What an ablation shard writes: the names its runners write and its report defaults read (no
// LibTorch). The full layouts, the variant list and what each number means: docs/ablation.md.
#pragma once

namespace seedgrid::ablation_layout {

// target: dw
inline constexpr char kAlphas[] = "alphas";                     // [A] f64
inline constexpr char kEvalRowIdx[] = "eval/row_idx";           // [R] i64
inline constexpr char kEvalLabel[] = "eval/label";              // [R] i64
inline constexpr char kVariants[] = "variants/";                // + <variant>/{logratio,pmass}
inline constexpr char kManifestVariant[] = "manifest/variant";  // [V] names
inline constexpr char kManifestRetained[] = "manifest/retained";
// Metrics per variant: kRetained + <variant>, kSteerDeltaOf + <variant>.
inline constexpr char kRetained[] = "retained.";
inline constexpr char kSteerDeltaOf[] = "steer_delta.";
// The anchors, shown first: retained is 1 for full and 0 for zero by definition.
inline constexpr char kRetainedFull[] = "retained.full";
inline constexpr char kRetainedZero[] = "retained.zero";
inline constexpr char kRetainedRandom[] = "retained.random_norm_matched";

// target: heads: [layers, heads] f64 per score under kHeads.
inline constexpr char kHeads[] = "heads";
inline constexpr char kHeadsDce[] = "heads/dce";
inline constexpr char kHeadsKl[] = "heads/kl";
inline constexpr char kHeadsTop1Changed[] = "heads/top1_changed";
inline constexpr char kHeadsPrevToken[] = "heads/prev_token";
inline constexpr char kHeadsInduction[] = "heads/induction";
// The rows the heads were scored on (ablation_torch.h HeadEvalSet): int32 token ids, int32 0/1.
inline constexpr char kHeadsEvalTokens[] = "eval/tokens";               // [R, T]
inline constexpr char kHeadsEvalCounted[] = "eval/counted";             // [R, T-1]
inline constexpr char kHeadsEvalInduction[] = "eval/induction_tokens";  // [RI, 2m]

}  // namespace seedgrid::ablation_layout
