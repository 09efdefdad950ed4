// Text renderers of a StageTable: Markdown, LaTeX (booktabs), tidy CSV (RFC 4180) and an HTML
// fragment. Pure functions of the table, so each format's escaping can be tested on its own.
//
// Every format carries the same facts: n as present/expected seeds, the incomplete flag, the
// missing seeds with their reasons, and the statistics conventions of stats.h in its header.
#pragma once

#include <string>
#include <string_view>

#include "coordinator/report/tables.h"

namespace seedgrid::report {

// One line stating the conventions (ddof = 1, sem, t-interval, sign agreement, n).
std::string_view StatsConventions();

std::string FormatNumber(double v);           // 4 significant digits; "—" for NaN
std::string EscapeLatex(std::string_view s);  // & % $ # _ { } ~ ^ \ made literal
std::string EscapeHtml(std::string_view s);
// Text as Markdown shows it literally, in a table cell or running text: & < > as entities (no raw
// HTML reaches the page), \ and | backslash-escaped, line breaks as spaces.
std::string EscapeMarkdownCell(std::string_view s);
// RFC 4180: quoted when it holds , " CR or LF. A cell a spreadsheet would run as a formula
// (starting with = + - @ tab or CR; OWASP "CSV injection") gets a leading ', unless it is a number
// or a ';'-separated list of numbers ("-0.5", "-1;2.5e-3"), which stay numbers.
std::string CsvField(std::string_view s);
std::string MissingText(const Cell& c);  // "seed 2 failed; seed 4 running" ("" when none)

// Headline of a table: stage, kind, groups, shard statuses, incomplete groups.
std::string TableSummary(const StageTable& t);

std::string TableMarkdown(const StageTable& t);
std::string TableLatex(const StageTable& t);
// One row per group × metric; full-precision numbers; empty fields for undefined statistics.
std::string TableCsv(const StageTable& t, const std::string& sweep);
std::string TableHtml(const StageTable& t);

}  // namespace seedgrid::report
