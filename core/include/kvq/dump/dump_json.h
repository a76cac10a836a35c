// JSON forms of a dump's header and statistics: the `kvq info --json` document,
// the events the isolated validator sends its parent (kvq/isolate/validator.h) and
// the entries of the statistics cache (kvq/dump/stats_cache.h). The readers are
// strict: a missing field, a wrong type, a non-finite or negative number, a layer
// the dump does not hold or an array that does not fit the dump's shape throws
// Error(Internal) naming `what` and the field — the caller decides whether that is
// a protocol error or a corrupt cache entry to ignore.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kvq/dump/dump.h"
#include "kvq/dump/dump_stats.h"

namespace kvq {

// The `kvq info --json` document: dumpHeaderToJson's fields + "layers".
nlohmann::json dumpInfoToJson(const DumpInfo& info, const std::vector<LayerStats>& stats);

nlohmann::json dumpHeaderToJson(const DumpInfo& info);
DumpInfo dumpHeaderFromJson(const nlohmann::json& j, const std::string& what);

// One layer: {"layer", "keys", "values"}; per kind the moments of every value,
// "per_head" [H], "channel_mean_abs" and "channel_max_abs" [D], "outlier_channels".
nlohmann::json layerStatsToJson(const LayerStats& stats);
LayerStats layerStatsFromJson(const nlohmann::json& j, const DumpInfo& info, const std::string& what);

}  // namespace kvq
