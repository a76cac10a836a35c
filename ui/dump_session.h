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
#include "kvq/isolate/open_file.h"

namespace kvq::ui {

struct DumpSession {
  QString path;
  std::unique_ptr<kvq::DumpReader> reader;  // read on the worker thread only
  std::vector<kvq::LayerStats> stats;       // [present layers], ascending layer
  bool statsFromCache = false;              // the per-user statistics cache answered
  const kvq::DumpInfo& info() const { return reader->info(); }
};

using SessionPtr = std::shared_ptr<const DumpSession>;

// Opens path with kvq::openDump under policy: listener.onHeader fires (on this,
// the worker thread) as soon as the header is validated, listener.onLayer as each
// layer's statistics complete; the session comes back once every value passed.
// Throws kvq::Error (a crash, hang or limit hit of the isolated library included).
SessionPtr loadSession(const QString& path, const kvq::OpenPolicy& policy, const kvq::OpenListener& listener,
                       const kvq::TaskControl& control);

// Per-channel mean |x| and max |x| of one head of one layer/kind, streaming the
// dump in chunks. meanAbs, maxAbs: [D] out.
void headChannelMagnitudes(const kvq::DumpReader& reader, int layer, kvq::Kind kind, int head,
                           std::vector<double>& meanAbs, std::vector<double>& maxAbs,
                           const kvq::TaskControl& control);

}  // namespace kvq::ui
