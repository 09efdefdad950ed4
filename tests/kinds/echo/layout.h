// What an echo shard writes: the names its runner writes and its report defaults read.
//   echo/x     [n] f64        0, 1, ..., n-1
//   echo/y     [n, rows] f64  scale·x + offset + seed/10 in every row (the rows are equal)
//   echo/loss  [n] f64        scale / (1 + x): a decreasing curve
// Metrics: slope (= scale), echo.first (y at x = 0), echo.last (y at x = n-1).
#pragma once

namespace seedgrid::echo_layout {

inline constexpr char kX[] = "echo/x";
inline constexpr char kY[] = "echo/y";
inline constexpr char kLoss[] = "echo/loss";

inline constexpr char kSlope[] = "slope";
inline constexpr char kEchoPrefix[] = "echo.";  // + first, last
inline constexpr char kFirst[] = "echo.first";
inline constexpr char kLast[] = "echo.last";

}  // namespace seedgrid::echo_layout
