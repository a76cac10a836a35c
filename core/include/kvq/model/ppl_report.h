// The perplexity report (perplexity.h) as JSON, CSV and a readable table.
#pragma once

#include <string>

#include "kvq/model/perplexity.h"

namespace kvq {

// Every number, per sequence and overall (docs/cli.md shows the layout).
std::string pplReportJson(const PplReport& report);
// One row per variant (the reference first) and sequence, then an "all" row per variant:
// variant,sequence,tokens,bits_per_channel,perplexity,mean_kl,top1_agreement
std::string pplReportCsv(const PplReport& report);
// A fixed-width table of the overall numbers and the dump agreement, for the terminal.
std::string pplReportTable(const PplReport& report);

}  // namespace kvq
