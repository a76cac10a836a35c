// Streaming statistics of a dump. Each chunk's per-head moments are computed in
// double with two passes (mean first, then central sums) and merged into running
// totals with the pairwise update of Chan et al. / Pebay (2008), which stays
// accurate for long streams and large means where naive sum-of-powers loses digits.
#include "kvq/dump/dump_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"

namespace kvq {
namespace {

// Count, mean and central sums M2..M4 of a set, plus sum |x| and max |x|.
struct Moments {
  double n = 0, mean = 0, m2 = 0, m3 = 0, m4 = 0, sumAbs = 0, maxAbs = 0;

  void merge(const Moments& b) {
    if (b.n == 0) return;
    if (n == 0) {
      *this = b;
      return;
    }
    const double na = n, nb = b.n, nt = na + nb;
    const double delta = b.mean - mean;
    const double d = delta / nt;
    const double d2 = d * d;
    const double m4New = m4 + b.m4 + delta * d * d2 * na * nb * (na * na - na * nb + nb * nb) +
                         6.0 * d2 * (na * na * b.m2 + nb * nb * m2) + 4.0 * d * (na * b.m3 - nb * m3);
    const double m3New = m3 + b.m3 + delta * d2 * na * nb * (na - nb) + 3.0 * d * (na * b.m2 - nb * m2);
    m2 = m2 + b.m2 + delta * d * na * nb;
    m3 = m3New;
    m4 = m4New;
    mean += nb * d;
    n = nt;
    sumAbs += b.sumAbs;
    maxAbs = std::max(maxAbs, b.maxAbs);
  }

  ValueStats finish() const {
    ValueStats s;
    s.count = static_cast<int64_t>(n);
    if (n == 0) return s;
    s.meanAbs = sumAbs / n;
    s.std = std::sqrt(m2 / n);
    s.maxAbs = maxAbs;
    // m4/m2^2 - 3 with population moments; a constant set has no defined
    // kurtosis and reports 0.
    s.excessKurtosis = m2 > 0 ? n * m4 / (m2 * m2) - 3.0 : 0.0;
    return s;
  }
};

// Per-channel sums of one head over a block of tokens: the first pass of the
// two-pass moments. Per-channel accumulators keep the inner loop free of
// reductions so the compiler vectorises it (-O3); target_clones adds an AVX2 copy
// chosen at load time.
struct ChannelSums {
  std::vector<double> sum, sumAbs, maxAbs, m2, m3, m4;
  void resize(size_t dim) {
    for (auto* v : {&sum, &sumAbs, &maxAbs, &m2, &m3, &m4}) v->assign(dim, 0.0);
  }
};

// x: tokens vectors of dim floats, stride floats apart. Accumulates into sums
// (sum, sumAbs, maxAbs), which the caller zeroed.
__attribute__((target_clones("avx2", "default"))) void firstPass(const float* x, int64_t tokens,
                                                                 size_t stride, size_t dim,
                                                                 ChannelSums& sums) {
  double* __restrict sum = sums.sum.data();
  double* __restrict sumAbs = sums.sumAbs.data();
  double* __restrict maxAbs = sums.maxAbs.data();
  for (int64_t t = 0; t < tokens; ++t) {
    const float* __restrict v = x + static_cast<size_t>(t) * stride;
    for (size_t c = 0; c < dim; ++c) {
      const double value = v[c];
      const double a = value < 0 ? -value : value;
      sum[c] += value;
      sumAbs[c] += a;
      maxAbs[c] = maxAbs[c] < a ? a : maxAbs[c];
    }
  }
}

// Central sums of powers 2..4 about mean; the second pass.
__attribute__((target_clones("avx2", "default"))) void secondPass(const float* x, int64_t tokens,
                                                                  size_t stride, size_t dim, double mean,
                                                                  ChannelSums& sums) {
  double* __restrict m2 = sums.m2.data();
  double* __restrict m3 = sums.m3.data();
  double* __restrict m4 = sums.m4.data();
  for (int64_t t = 0; t < tokens; ++t) {
    const float* __restrict v = x + static_cast<size_t>(t) * stride;
    for (size_t c = 0; c < dim; ++c) {
      const double d = v[c] - mean;
      const double d2 = d * d;
      m2[c] += d2;
      m3[c] += d2 * d;
      m4[c] += d2 * d2;
    }
  }
}

// Tokens per block of the two passes: about 256 KiB of float32, so the second pass
// reads the block from cache, not memory.
int64_t blockTokens(int heads, int dim) {
  const int64_t perToken = static_cast<int64_t>(heads) * dim * 4;
  return std::max<int64_t>(1, (int64_t{256} << 10) / std::max<int64_t>(1, perToken));
}

class KindAccumulator {
 public:
  KindAccumulator(int heads, int dim)
      : m_heads(static_cast<size_t>(heads)),
        m_channelSumAbs(static_cast<size_t>(dim), 0.0),
        m_channelMaxAbs(static_cast<size_t>(dim), 0.0) {}

  // slab: [tokens, heads, dim] float32. Returns false when the slab holds a NaN or
  // an infinity (a sum of finite floats in double is finite); the accumulator is
  // then unusable.
  bool add(const Slab& slab) {
    const int64_t block = blockTokens(slab.heads, slab.dim);
    for (int64_t t0 = 0; t0 < slab.tokens; t0 += block) {
      const int64_t tokens = std::min(block, slab.tokens - t0);
      for (int h = 0; h < slab.heads; ++h) {
        if (!addBlock(slab, t0, tokens, h)) return false;
      }
    }
    m_vectors += static_cast<double>(slab.tokens) * slab.heads;
    return true;
  }

  KindStats finish() const {
    KindStats out;
    Moments all;
    for (const Moments& h : m_heads) {
      all.merge(h);
      out.perHead.push_back(h.finish());
    }
    out.all = all.finish();
    out.channelMeanAbs.resize(m_channelSumAbs.size(), 0.0);
    for (size_t c = 0; c < m_channelSumAbs.size(); ++c) {
      if (m_vectors > 0) out.channelMeanAbs[c] = m_channelSumAbs[c] / m_vectors;
    }
    out.channelMaxAbs = m_channelMaxAbs;
    std::vector<int> order(m_channelSumAbs.size());
    std::iota(order.begin(), order.end(), 0);
    // Decreasing mean |x|; ties keep the lower channel first (stable sort).
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return out.channelMeanAbs[static_cast<size_t>(a)] > out.channelMeanAbs[static_cast<size_t>(b)];
    });
    order.resize(std::min<size_t>(order.size(), 8));
    out.outlierChannels = std::move(order);
    return out;
  }

 private:
  // Two passes over tokens [t0, t0+tokens) of head h, merged into the head's moments.
  bool addBlock(const Slab& slab, int64_t t0, int64_t tokens, int h) {
    const auto dim = static_cast<size_t>(slab.dim);
    const size_t stride = static_cast<size_t>(slab.heads) * dim;
    const float* x = slab.data.data() + static_cast<size_t>(t0) * stride + static_cast<size_t>(h) * dim;
    m_sums.resize(dim);
    firstPass(x, tokens, stride, dim, m_sums);
    Moments block;
    block.n = static_cast<double>(tokens) * static_cast<double>(dim);
    double sum = 0;
    for (size_t c = 0; c < dim; ++c) {
      sum += m_sums.sum[c];
      block.sumAbs += m_sums.sumAbs[c];
      block.maxAbs = std::max(block.maxAbs, m_sums.maxAbs[c]);
      m_channelSumAbs[c] += m_sums.sumAbs[c];
      m_channelMaxAbs[c] = std::max(m_channelMaxAbs[c], m_sums.maxAbs[c]);
    }
    if (!std::isfinite(sum)) return false;
    if (block.n == 0) return true;
    block.mean = sum / block.n;
    secondPass(x, tokens, stride, dim, block.mean, m_sums);
    for (size_t c = 0; c < dim; ++c) {
      block.m2 += m_sums.m2[c];
      block.m3 += m_sums.m3[c];
      block.m4 += m_sums.m4[c];
    }
    m_heads[static_cast<size_t>(h)].merge(block);
    return true;
  }

  std::vector<Moments> m_heads;
  std::vector<double> m_channelSumAbs;
  std::vector<double> m_channelMaxAbs;
  ChannelSums m_sums;    // scratch of one block
  double m_vectors = 0;  // (token, head) vectors seen
};

}  // namespace

namespace {

// Refuses the first NaN/Inf of slab (memory order: token, head, channel) with the
// reader's message; slab is known to hold one.
[[noreturn]] void refuseNonFinite(const DumpInfo& info, Kind kind, const std::string& where,
                                  const Slab& slab) {
  const auto bad =
      std::find_if(slab.data.begin(), slab.data.end(), [](float v) { return !std::isfinite(v); });
  const auto i = static_cast<int64_t>(bad - slab.data.begin());
  const int64_t perToken = static_cast<int64_t>(slab.heads) * slab.dim;
  const float value = bad != slab.data.end() ? *bad : std::numeric_limits<float>::quiet_NaN();
  const char* what = std::isnan(value) ? "NaN" : (value > 0 ? "Inf" : "-Inf");
  const int64_t row = slab.tokenBegin + i / perToken;
  // Query rows name their token too when /query_positions selects them.
  const bool mapped = kind == Kind::Queries && !info.queryPositions.empty();
  const std::string at = mapped ? "row " + std::to_string(row) + " (token " +
                                      std::to_string(info.queryPositions[static_cast<size_t>(row)]) + ")"
                                : "token " + std::to_string(row);
  throwBadInput(info.path, where,
                std::string(what) + " at " + at + ", head " + std::to_string((i % perToken) / slab.dim) +
                    ", channel " + std::to_string(i % slab.dim));
}

// Progress over the tokens of every dataset the scan reads.
class ScanProgress {
 public:
  ScanProgress(const DumpReader& reader, const std::vector<int>& layers, const TaskControl* control)
      : m_control(control) {
    for (int layer : layers) {
      for (Kind kind : {Kind::Keys, Kind::Values, Kind::Queries}) {
        if (!reader.has(layer, kind)) continue;
        m_total +=
            static_cast<double>(kind == Kind::Queries ? reader.info().queryTokens : reader.info().tokens);
      }
    }
  }
  void advance(int64_t tokens, const std::string& stage) {
    m_done += static_cast<double>(tokens);
    reportProgress(m_control, m_total > 0 ? m_done / m_total : 1.0, stage);
  }

 private:
  const TaskControl* m_control;
  double m_total = 0, m_done = 0;
};

}  // namespace

void scanLayers(const DumpReader& reader, const std::vector<int>& layers,
                const std::function<void(LayerStats&&)>& onLayer, const TaskControl* control,
                int64_t chunkTokens) {
  const DumpInfo& info = reader.info();
  ScanProgress progress(reader, layers, control);
  for (int layer : layers) {
    LayerStats ls;
    ls.layer = layer;
    for (Kind kind : {Kind::Keys, Kind::Values, Kind::Queries}) {
      if (kind == Kind::Queries && !reader.has(layer, kind)) continue;
      const std::string where = "/layers/" + std::to_string(layer) + "/" + kindName(kind);
      const std::string stage = "statistics: layer " + std::to_string(layer) + " " + kindName(kind);
      const int heads = kind == Kind::Queries ? info.numQHeads : info.numKvHeads;
      KindAccumulator acc(heads, info.headDim);
      reader.forEachChunk(layer, kind, chunkTokens, [&](const Slab& slab) {
        checkCancel(control);
        const bool finite = kind == Kind::Queries ? std::all_of(slab.data.begin(), slab.data.end(),
                                                                [](float v) { return std::isfinite(v); })
                                                  : acc.add(slab);
        if (!finite) refuseNonFinite(info, kind, where, slab);
        progress.advance(slab.tokens, stage);
      });
      if (kind != Kind::Queries) (kind == Kind::Keys ? ls.keys : ls.values) = acc.finish();
    }
    onLayer(std::move(ls));
  }
}

std::vector<LayerStats> computeDumpStats(const DumpReader& reader, const TaskControl* control,
                                         int64_t chunkTokens) {
  std::vector<LayerStats> result;
  scanLayers(
      reader, reader.info().layers, [&](LayerStats&& ls) { result.push_back(std::move(ls)); }, control,
      chunkTokens);
  return result;
}

}  // namespace kvq
