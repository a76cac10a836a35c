// DumpSession — an opened dump and its `info` statistics, as the GUI holds them.
// Built on the worker thread by loadSession(); immutable afterwards and shared by
// the views (std::shared_ptr<const>) so a replaced session stays valid for jobs
// still using it.
#pragma once

#include <QString>

#include <memory>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"

namespace kvq::ui {

struct DumpSession {
  QString path;
  std::unique_ptr<kvq::DumpReader> reader;  // read on the worker thread only
  std::vector<kvq::LayerStats> stats;       // [present layers], ascending layer
  const kvq::DumpInfo& info() const { return reader->info(); }
};

using SessionPtr = std::shared_ptr<const DumpSession>;

// Opens and validates path, then computes the statistics (one pass per layer and
// kind). Progress: 0..0.5 the value scan, 0.5..1 the statistics. Throws kvq::Error.
SessionPtr loadSession(const QString& path, const kvq::TaskControl& control);

// Per-channel mean |x| and max |x| of one head of one layer/kind, streaming the
// dump in chunks. meanAbs, maxAbs: [D] out.
void headChannelMagnitudes(const kvq::DumpReader& reader, int layer, kvq::Kind kind, int head,
                           std::vector<double>& meanAbs, std::vector<double>& maxAbs,
                           const kvq::TaskControl& control);

}  // namespace kvq::ui
