#include "dump_session.h"

#include <algorithm>
#include <cmath>

namespace kvq::ui {

SessionPtr loadSession(const QString& path, const kvq::OpenPolicy& policy, const kvq::OpenListener& listener,
                       const kvq::TaskControl& control) {
  auto session = std::make_shared<DumpSession>();
  session->path = path;
  control.report(0.0, "Opening");
  kvq::OpenedDump opened = kvq::openDump(path.toStdString(), policy, listener, &control);
  session->reader = std::move(opened.reader);
  session->stats = std::move(opened.stats);
  session->statsFromCache = opened.statsFromCache;
  control.report(1.0, "Statistics");
  return session;
}

void headChannelMagnitudes(const kvq::DumpReader& reader, int layer, kvq::Kind kind, int head,
                           std::vector<double>& meanAbs, std::vector<double>& maxAbs,
                           const kvq::TaskControl& control) {
  const kvq::DumpInfo& info = reader.info();
  const int dim = info.headDim;
  meanAbs.assign(static_cast<size_t>(dim), 0.0);
  maxAbs.assign(static_cast<size_t>(dim), 0.0);
  const int64_t chunk = 4096;
  int64_t seen = 0;
  // Whole-layer chunks, then one head of each: a head hyperslab per chunk would
  // cost one HDF5 selection per chunk either way, and this keeps the reader's API.
  reader.forEachChunk(
      layer, kind, chunk,
      [&](const kvq::Slab& slab) {
        for (int64_t t = 0; t < slab.tokens; ++t) {
          const float* v = slab.vector(t, head);
          for (int c = 0; c < dim; ++c) {
            const double a = std::fabs(static_cast<double>(v[c]));
            meanAbs[static_cast<size_t>(c)] += a;
            maxAbs[static_cast<size_t>(c)] = std::max(maxAbs[static_cast<size_t>(c)], a);
          }
        }
        seen += slab.tokens;
        control.report(info.tokens > 0 ? static_cast<double>(seen) / static_cast<double>(info.tokens) : 1.0,
                       "Channel magnitudes");
      },
      &control);
  if (seen > 0) {
    for (double& m : meanAbs) m /= static_cast<double>(seen);
  }
}

}  // namespace kvq::ui
