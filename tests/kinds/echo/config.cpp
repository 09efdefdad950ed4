// echo's config half: params, checks, the datasets a done shard's file holds, report defaults.
#include "tests/kinds/echo/echo.h"
#include "tests/kinds/echo/layout.h"

namespace seedgrid {
namespace {

namespace L = echo_layout;

std::vector<std::string> ValidateEcho(const Json& p) {
  std::vector<std::string> problems;
  if (p.at("n").get<int64_t>() < 2) problems.push_back("n: must be >= 2");
  if (p.at("rows").get<int64_t>() < 1) problems.push_back("rows: must be >= 1");
  return problems;
}

KindReport EchoReport() {
  KindReport r;
  r.metrics = {L::kSlope, std::string(L::kEchoPrefix) + "*"};  // the rest follow by name
  KindFigure curve;
  curve.type = "echo_curve";
  curve.renderer = FigureRenderer::kCurve;
  curve.x = L::kX;
  curve.y = L::kY;
  curve.title = "Echo, stage {stage}";
  curve.xlabel = "x";
  curve.ylabel = "y";
  curve.caption = "y against x, mean over {seeds} seeds.";
  KindFigure loss;
  loss.type = "echo_loss";
  loss.renderer = FigureRenderer::kSeries;
  loss.series = {{L::kLoss, "loss"}};
  loss.title = "Echo loss, stage {stage}";
  loss.xlabel = "x";
  loss.ylabel = "loss";
  loss.caption = "{datasets} against x.";
  loss.by_default = false;  // drawn only when a spec asks for it
  r.figures = {curve, loss};
  return r;
}

}  // namespace

KindConfig EchoKindConfig() {
  KindConfig k;
  k.name = "echo";
  k.summary = "writes y = scale·x + offset (a test-only kind)";
  k.defaults = {{"n", 5}, {"rows", 2}, {"scale", 1.0}, {"offset", 0.0}};
  k.validate = ValidateEcho;
  k.datasets = [](const Json&, std::string_view) {
    return std::vector<std::string>{L::kX, L::kY, L::kLoss};
  };
  k.report = EchoReport();
  return k;
}

void RegisterEchoConfig(KindRegistry& kinds) { kinds.Add(EchoKindConfig()); }

}  // namespace seedgrid
