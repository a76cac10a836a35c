// Summary statistics of a dump, as `kvq info` prints them and the GUI's dataset
// panel shows them. Computed in one streaming pass that also refuses NaN/Inf (the
// reader's value check), so opening a dump reads its data once; the isolated
// validator runs the same pass in a child process (docs/architecture.md, "Opening").
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

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

// One pass over `layers` (each must be present): statistics of keys and values, and
// the value check of keys, values and queries — the first NaN/Inf throws
// Error(BadInput) "<file>: /layers/L/<kind>: NaN at token t, head h, channel c", as
// the reader's open-time scan does. onLayer receives each layer's statistics as soon
// as it is complete, in the order of `layers`. chunkTokens bounds memory (a block of
// chunkTokens x H x D float32 values is read at a time).
void scanLayers(const DumpReader& reader, const std::vector<int>& layers,
                const std::function<void(LayerStats&&)>& onLayer, const TaskControl* control = nullptr,
                int64_t chunkTokens = 4096);

// scanLayers over every present layer, collected in ascending layer order.
std::vector<LayerStats> computeDumpStats(const DumpReader& reader, const TaskControl* control = nullptr,
                                         int64_t chunkTokens = 4096);

}  // namespace kvq
