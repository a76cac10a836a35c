// The perplexity report (perplexity.h) as JSON, CSV and a readable table.
#pragma once

#include <string>

#include "kvq/model/perplexity.h"

namespace kvq {

// "identity", "rvq", "kivi": a variant's kind in the JSON report.
const char* variantKindName(CacheVariantKind kind);
// Every number, per sequence and overall (docs/cli.md shows the layout).
std::string pplReportJson(const PplReport& report);
// The report pplReportJson wrote, read back from `text` (the file at `path`): paths, quantized
// layers, sequences, the reference and every variant's label, kind, sinks, window, bits and token
// statistics (overall and per sequence; sums rebuilt from the means). Throws Error(BadInput) naming
// `path` and the field for text that is not such a report.
PplReport pplReportFromJson(const std::string& text, const std::string& path);
// One row per variant (the reference first) and sequence, then an "all" row per variant:
// variant,sequence,tokens,bits_per_channel,perplexity,mean_kl,top1_agreement
std::string pplReportCsv(const PplReport& report);
// A fixed-width table of the overall numbers and the dump agreement, for the terminal.
std::string pplReportTable(const PplReport& report);

}  // namespace kvq
