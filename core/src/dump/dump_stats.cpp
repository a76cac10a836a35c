// Streaming statistics of a dump. Each chunk's per-head moments are computed in
// double with two passes (mean first, then central sums) and merged into running
// totals with the pairwise update of Chan et al. / Pebay (2008), which stays
// accurate for long streams and large means where naive sum-of-powers loses digits.
#include "kvq/dump/dump_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <nlohmann/json.hpp>

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

class KindAccumulator {
 public:
  KindAccumulator(int heads, int dim)
      : m_heads(static_cast<size_t>(heads)),
        m_channelSumAbs(static_cast<size_t>(dim), 0.0),
        m_channelMaxAbs(static_cast<size_t>(dim), 0.0) {}

  // slab: [tokens, heads, dim] float32.
  void add(const Slab& slab) {
    const auto dim = static_cast<size_t>(slab.dim);
    for (int h = 0; h < slab.heads; ++h) {
      Moments chunk;
      chunk.n = static_cast<double>(slab.tokens) * static_cast<double>(dim);
      double sum = 0;
      for (int64_t t = 0; t < slab.tokens; ++t) {
        const float* v = slab.vector(t, h);
        for (size_t c = 0; c < dim; ++c) {
          const double x = v[c];
          const double a = std::abs(x);
          sum += x;
          chunk.sumAbs += a;
          chunk.maxAbs = std::max(chunk.maxAbs, a);
          m_channelSumAbs[c] += a;
          m_channelMaxAbs[c] = std::max(m_channelMaxAbs[c], a);
        }
      }
      if (chunk.n == 0) continue;
      chunk.mean = sum / chunk.n;
      for (int64_t t = 0; t < slab.tokens; ++t) {
        const float* v = slab.vector(t, h);
        for (size_t c = 0; c < dim; ++c) {
          const double d = v[c] - chunk.mean;
          const double d2 = d * d;
          chunk.m2 += d2;
          chunk.m3 += d2 * d;
          chunk.m4 += d2 * d2;
        }
      }
      m_heads[static_cast<size_t>(h)].merge(chunk);
    }
    m_vectors += static_cast<double>(slab.tokens) * slab.heads;
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
  std::vector<Moments> m_heads;
  std::vector<double> m_channelSumAbs;
  std::vector<double> m_channelMaxAbs;
  double m_vectors = 0;  // (token, head) vectors seen
};

nlohmann::json valueStatsJson(const ValueStats& s) {
  return {{"count", s.count},
          {"mean_abs", s.meanAbs},
          {"std", s.std},
          {"max_abs", s.maxAbs},
          {"excess_kurtosis", s.excessKurtosis}};
}

nlohmann::json kindStatsJson(const KindStats& k) {
  nlohmann::json j = valueStatsJson(k.all);
  nlohmann::json heads = nlohmann::json::array();
  for (const ValueStats& h : k.perHead) heads.push_back(valueStatsJson(h));
  j["per_head"] = std::move(heads);
  j["channel_mean_abs"] = k.channelMeanAbs;
  j["channel_max_abs"] = k.channelMaxAbs;
  j["outlier_channels"] = k.outlierChannels;
  return j;
}

}  // namespace

std::vector<LayerStats> computeDumpStats(const DumpReader& reader, const TaskControl* control,
                                         int64_t chunkTokens) {
  const DumpInfo& info = reader.info();
  std::vector<LayerStats> result;
  const double units = static_cast<double>(info.layers.size()) * 2.0;
  double done = 0;
  for (int layer : info.layers) {
    LayerStats ls;
    ls.layer = layer;
    for (Kind kind : {Kind::Keys, Kind::Values}) {
      KindAccumulator acc(info.numKvHeads, info.headDim);
      const std::string stage = "statistics: layer " + std::to_string(layer) + " " + kindName(kind);
      reader.forEachChunk(layer, kind, chunkTokens, [&](const Slab& slab) {
        checkCancel(control);
        acc.add(slab);
        const double within =
            static_cast<double>(slab.tokenBegin + slab.tokens) / static_cast<double>(info.tokens);
        reportProgress(control, (done + within) / units, stage);
      });
      (kind == Kind::Keys ? ls.keys : ls.values) = acc.finish();
      done += 1;
    }
    result.push_back(std::move(ls));
  }
  return result;
}

namespace {

// /query_positions as [begin, end) runs of consecutive tokens (compact for the usual
// "tail of every sequence"); null when queries hold every token or are absent.
nlohmann::json queryRangesJson(const DumpInfo& info) {
  if (info.queryPositions.empty()) return nullptr;
  nlohmann::json ranges = nlohmann::json::array();
  const std::vector<int64_t>& p = info.queryPositions;
  size_t begin = 0;
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] != p[i - 1] + 1) {
      ranges.push_back({p[begin], p[i - 1] + 1});
      begin = i;
    }
  }
  return ranges;
}

}  // namespace

nlohmann::json dumpInfoToJson(const DumpInfo& info, const std::vector<LayerStats>& stats) {
  nlohmann::json j;
  j["path"] = info.path;
  j["format_version"] = info.formatVersion;
  j["model"] = info.model;
  j["source"] = info.source;
  j["num_layers"] = info.numLayers;
  j["num_kv_heads"] = info.numKvHeads;
  j["head_dim"] = info.headDim;
  j["num_q_heads"] = info.numQHeads > 0 ? nlohmann::json(info.numQHeads) : nlohmann::json(nullptr);
  j["key_rope"] = info.keyRope;
  j["rope_theta"] = info.ropeTheta ? nlohmann::json(*info.ropeTheta) : nlohmann::json(nullptr);
  j["rope_dim"] = info.ropeDim ? nlohmann::json(*info.ropeDim) : nlohmann::json(nullptr);
  j["rope_layout"] = info.ropeLayout;
  j["rope_inv_freq"] = info.ropeInvFreq.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.ropeInvFreq);
  j["attention_scale"] = info.attentionScale ? nlohmann::json(*info.attentionScale) : nlohmann::json(nullptr);
  j["tokens"] = info.tokens;
  j["dtype"] = dtypeName(info.dtype);
  j["layers_present"] = info.layers;
  j["has_queries"] = info.hasQueries;
  j["query_tokens"] = info.queryTokens;
  j["query_positions"] = queryRangesJson(info);
  j["has_token_ids"] = info.hasTokenIds;
  j["sequence_starts"] = info.sequenceStarts;
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerStats& ls : stats) {
    layers.push_back(
        {{"layer", ls.layer}, {"keys", kindStatsJson(ls.keys)}, {"values", kindStatsJson(ls.values)}});
  }
  j["layers"] = std::move(layers);
  return j;
}

}  // namespace kvq
