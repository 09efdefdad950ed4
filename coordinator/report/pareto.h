// The Pareto front of a set of points where x is a cost (lower is better) and y a benefit
// (higher is better), as the report's kPareto figures draw it (core/kinds.h). Pure, so the
// choice of points is tested on its own (tests/report/pareto_test.cpp).
#pragma once

#include <cstddef>
#include <vector>

namespace seedgrid::report {

// Indices of the points no other point dominates, sorted by x ascending (ties: y descending,
// then index). Point j dominates point i when x_j <= x_i and y_j >= y_i with one of them strict;
// equal points therefore are all on the front. A point with a non-finite coordinate is neither
// on the front nor dominates any. x and y must have the same size (std::invalid_argument).
std::vector<size_t> ParetoFront(const std::vector<double>& x, const std::vector<double>& y);

}  // namespace seedgrid::report
