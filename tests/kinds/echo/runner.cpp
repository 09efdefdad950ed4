// echo's runner.
#include "tests/kinds/echo/echo.h"
#include "tests/kinds/echo/layout.h"

namespace seedgrid {

void RunEcho(ShardContext& ctx) {
  namespace L = echo_layout;
  const Json& p = ctx.params();
  const int64_t n = p.at("n").get<int64_t>(), rows = p.at("rows").get<int64_t>();
  const double scale = p.at("scale").get<double>();
  const double offset = p.at("offset").get<double>() + static_cast<double>(ctx.seed()) / 10;
  std::vector<double> x(static_cast<size_t>(n)), y, loss;
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] = static_cast<double>(i);
    for (int64_t r = 0; r < rows; ++r) y.push_back(scale * static_cast<double>(i) + offset);
    loss.push_back(scale / (1.0 + static_cast<double>(i)));
  }
  ctx.out().Write(L::kX, x);
  ctx.out().Write(L::kY, y.data(), Shape{n, rows});
  ctx.out().Write(L::kLoss, loss);
  ctx.Metric(L::kSlope, scale);
  ctx.Metric(L::kFirst, y.front());
  ctx.Metric(L::kLast, y.back());
}

void RegisterEchoRunners(RunnerRegistry& runners) { runners.Add("echo", RunEcho); }

}  // namespace seedgrid
