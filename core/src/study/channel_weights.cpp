#include "kvq/study/channel_weights.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kvq/attention/dump_rope.h"
#include "kvq/base/error.h"

namespace kvq {

void QuerySecondMoments::add(const float* q, int64_t n) {
  const size_t d = m_sums.size();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = q + static_cast<size_t>(i) * d;
    for (size_t c = 0; c < d; ++c) m_sums[c] += static_cast<double>(row[c]) * row[c];
  }
  m_count += n;
}

std::vector<float> QuerySecondMoments::weights(RopeLayout layout, int ropeDim) const {
  if (m_count == 0) throwInternal("query weights", "no query was added");
  const int d = static_cast<int>(m_sums.size());
  std::vector<double> moment(m_sums.size());
  for (size_t c = 0; c < m_sums.size(); ++c) moment[c] = m_sums[c] / static_cast<double>(m_count);
  const int pairs = std::clamp(ropeDim, 0, d) / 2;
  for (int i = 0; i < pairs; ++i) {
    const int a = layout == RopeLayout::Half ? i : 2 * i;
    const int b = layout == RopeLayout::Half ? i + pairs : 2 * i + 1;
    const double mean = 0.5 * (moment[static_cast<size_t>(a)] + moment[static_cast<size_t>(b)]);
    moment[static_cast<size_t>(a)] = mean;
    moment[static_cast<size_t>(b)] = mean;
  }
  // Floor at 1e-3 of the largest weight (1e-6 of its moment): decoding divides by w, and a channel
  // no query reads is still stored.
  const double largest = *std::max_element(moment.begin(), moment.end());
  const double floor = largest > 0 ? largest * 1e-6 : 1.0;
  double meanSquare = 0;
  for (double& m : moment) {
    m = std::max(m, floor);
    meanSquare += m;
  }
  meanSquare /= d;
  std::vector<float> w(m_sums.size());
  for (size_t c = 0; c < w.size(); ++c) w[c] = static_cast<float>(std::sqrt(moment[c] / meanSquare));
  return w;
}

namespace {

// Adds every query row of the layer in reader to moments.
void addQueries(const DumpReader& reader, int layer, QuerySecondMoments& moments,
                const TaskControl* control) {
  const DumpInfo& info = reader.info();
  if (!info.hasQueries || info.queryTokens == 0 || !reader.has(layer, Kind::Queries)) {
    throwBadInput(info.path, "/layers/" + std::to_string(layer) + "/queries",
                  "query_aware needs the layer's queries, and this dump stores none (dump with --queries)");
  }
  constexpr int64_t kChunkRows = 1024;
  for (int64_t r = 0; r < info.queryTokens; r += kChunkRows) {
    checkCancel(control);
    const Slab slab = reader.read(layer, Kind::Queries, r, std::min(kChunkRows, info.queryTokens - r));
    moments.add(slab.data.data(), slab.tokens * slab.heads);
  }
}

}  // namespace

std::vector<float> queryKeyWeights(const DumpReader& reader, int layer, const TaskControl* control) {
  return queryKeyWeights(std::vector<const DumpReader*>{&reader}, layer, control);
}

std::vector<float> queryKeyWeights(const std::vector<const DumpReader*>& readers, int layer,
                                   const TaskControl* control) {
  if (readers.empty()) throwInternal("queryKeyWeights", "no dump");
  const DumpInfo& info = readers.front()->info();
  QuerySecondMoments moments(info.headDim);
  for (const DumpReader* reader : readers) addQueries(*reader, layer, moments, control);
  const DumpRope rope = ropeFromDump(info);
  return moments.weights(rope.layout, rope.ropeDim());
}

}  // namespace kvq
