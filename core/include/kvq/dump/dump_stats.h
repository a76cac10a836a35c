// Summary statistics of a dump, as `kvq info` prints them and the GUI's dataset
// panel shows them. Computed in one streaming pass per layer and kind.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kvq/base/task.h"
#include "kvq/dump/dump.h"

namespace kvq {

class DumpReader;

// Moments of a set of values (all channels of all vectors in the set).
struct ValueStats {
  int64_t count = 0;
  double meanAbs = 0;         // mean |x|
  double std = 0;             // population standard deviation
  double maxAbs = 0;          // max |x|
  double excessKurtosis = 0;  // m4 / m2^2 - 3 (0 for a Gaussian)
};

struct KindStats {
  ValueStats all;                      // over every head and channel
  std::vector<ValueStats> perHead;     // [H]
  std::vector<double> channelMeanAbs;  // [D] mean |x| per channel over tokens and heads
  std::vector<double> channelMaxAbs;   // [D]
  std::vector<int> outlierChannels;    // channels by decreasing mean |x| (top 8)
};

struct LayerStats {
  int layer = 0;
  KindStats keys;
  KindStats values;
};

// One pass over every present layer (keys and values). chunkTokens bounds memory.
std::vector<LayerStats> computeDumpStats(const DumpReader& reader, const TaskControl* control = nullptr,
                                         int64_t chunkTokens = 4096);

// The `kvq info --json` document: info fields + per-layer stats.
nlohmann::json dumpInfoToJson(const DumpInfo& info, const std::vector<LayerStats>& stats);

}  // namespace kvq
