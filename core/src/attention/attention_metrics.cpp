#include "kvq/attention/attention_metrics.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>

#include "attention/attention_kernels.h"
#include "kvq/base/error.h"

namespace kvq {
namespace {

using attn::Isa;
using attn::kKeyTile;
using attn::kPanel;
using attn::kRowTile;

double ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}

constexpr int kMaxBlockQueries = 64;  // keeps enough blocks for every thread

// Consecutive queries of one sequence, processed together.
struct Block {
  int64_t first = 0;     // index of the first query
  int64_t count = 0;     // queries
  int64_t seqStart = 0;  // first token of their sequence
  int64_t lastPos = 0;   // token of the last (latest) query
};

int64_t roundUp(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// Logit columns of a block: keys from keyBegin = seqStart rounded down to a panel.
int64_t blockColumns(int64_t seqStart, int64_t lastPos) {
  return roundUp(seqStart % kPanel + lastPos - seqStart + 1, kKeyTile);
}

std::vector<Block> makeBlocks(const AttentionQueries& q, int64_t blockFloats) {
  std::vector<Block> blocks;
  for (int64_t i = 0; i < q.count; ++i) {
    const int64_t start = q.sequenceStarts[i], pos = q.positions[i];
    if (!blocks.empty()) {
      Block& b = blocks.back();
      const int64_t rows = roundUp((b.count + 1) * q.heads, kRowTile);
      if (b.seqStart == start && b.count < kMaxBlockQueries &&
          rows * blockColumns(start, pos) <= blockFloats) {
        ++b.count;
        b.lastPos = pos;
        continue;
      }
    }
    blocks.push_back({i, 1, start, pos});
  }
  return blocks;
}

// Per-thread buffers of one block.
struct Scratch {
  std::vector<float> q, sRef, pRef, sVar, pVar, oRef, oVar, oWindow, sinkRef, recentRef, tmp;
  std::vector<double> lseRef, lseVar, lsePrevious;  // lsePrevious: the variant before this one
  std::vector<int64_t> top;

  void fit(int64_t rows, int64_t cols, int Dp, int topK) {
    for (auto* m : {&sRef, &pRef, &sVar, &pVar}) m->resize(static_cast<size_t>(rows * cols));
    for (auto* v : {&q, &oRef, &oVar, &oWindow, &sinkRef, &recentRef})
      v->resize(static_cast<size_t>(rows * Dp));
    tmp.resize(3 * static_cast<size_t>(Dp));
    for (auto* v : {&lseRef, &lseVar, &lsePrevious}) v->resize(static_cast<size_t>(rows));
    top.resize(static_cast<size_t>(topK));
  }
};

// One kv head's exact and reconstructed keys and values, laid out for the kernels.
struct HeadInputs {
  Isa isa = Isa::Scalar;
  const AttentionSettings* settings = nullptr;
  const std::vector<AttentionVariant>* variants = nullptr;
  int64_t tokens = 0;
  int dim = 0;
  int dimPadded = 0;
  std::vector<attn::PackedKeys> packed;    // [0] exact keys, then each distinct variant key array
  std::vector<size_t> packedOf;            // [variants]
  std::vector<attn::PackedValues> values;  // [0] exact values, then each distinct variant value array
  std::vector<size_t> valuesOf;            // [variants]

  void prepare(const float* keys, const float* vals) {
    dimPadded = attn::paddedDim(dim);
    std::vector<const float*> keySources{keys}, valueSources{vals};
    packed.emplace_back().pack(keys, tokens, dim);
    values.emplace_back().pack(vals, tokens, dim);
    for (const AttentionVariant& v : *variants) {
      packedOf.push_back(
          indexOf(keySources, v.keys, [&] { packed.emplace_back().pack(v.keys, tokens, dim); }));
      valuesOf.push_back(
          indexOf(valueSources, v.values, [&] { this->values.emplace_back().pack(v.values, tokens, dim); }));
    }
  }

 private:
  // The index of `source` among `sources`, appended (and packed) when new.
  template <typename Pack>
  static size_t indexOf(std::vector<const float*>& sources, const float* source, Pack pack) {
    const auto it = std::find(sources.begin(), sources.end(), source);
    if (it != sources.end()) return static_cast<size_t>(it - sources.begin());
    sources.push_back(source);
    pack();
    return sources.size() - 1;
  }
};

// The key ranges of one query row (indices relative to its sequence start).
struct RowRegions {
  int64_t m = 0;            // keys read: sequence start .. the query's token
  int64_t recentBegin = 0;  // first key of the recent region (after the sink)
  // KIVI's full-precision window R as KIVI decodes after appending the query's token:
  // keys are quantized R at a time, so keys from floor(m/R)·R on are exact; values
  // leave the window one at a time, so the last R are exact (the sink too when near).
  int64_t keyWindowBegin = 0;
  int64_t valueWindowBegin = 0;

  RowRegions(int64_t keys, int window)
      : m(keys),
        recentBegin(std::max<int64_t>(1, keys - window)),
        keyWindowBegin(keys / window * window),
        valueWindowBegin(std::max<int64_t>(0, keys - window)) {}
  KeyRegion of(int64_t j) const {
    return j == 0 ? KeyRegion::Sink : j >= recentBegin ? KeyRegion::Recent : KeyRegion::Rest;
  }
};

double squaredDistance(const float* a, const float* b, int dim) {
  double s = 0;
  for (int c = 0; c < dim; ++c) {
    const double d = static_cast<double>(a[c]) - b[c];
    s += d * d;
  }
  return s;
}

// Everything one query row contributes to one variant's sums.
struct RowContext {
  const HeadInputs* in = nullptr;
  const float *sRef = nullptr, *pRef = nullptr, *sVar = nullptr, *pVar = nullptr;  // at the sequence start
  double lseRef = 0, lseVar = 0;
  const float *oRef = nullptr, *sinkRef = nullptr, *recentRef = nullptr;  // [Dp]
  float* oVar = nullptr;                                                  // [Dp], corrected in place
  const attn::PackedValues *vExact = nullptr, *vVar = nullptr;
  int64_t seqStart = 0;  // the row's sequence start (token of key index 0)
  bool exactWindow = false;
};

void addLogitSums(const RowContext& r, const RowRegions& g, AttentionSums& sums) {
  const int64_t bounds[kKeyRegions][2] = {{0, 1}, {g.recentBegin, g.m}, {1, g.recentBegin}};
  for (int k = 0; k < kKeyRegions; ++k) {
    RegionSums& reg = sums.regions[static_cast<size_t>(k)];
    const int64_t a = bounds[k][0], b = std::max(bounds[k][0], bounds[k][1]);
    if (a >= b) continue;
    const attn::PairSums ps = attn::pairSums(r.in->isa, r.pRef, r.sRef, r.sVar, a, b);
    reg.mass += ps.mass;
    reg.kl += ps.massLogitDiff - (r.lseRef - r.lseVar) * ps.mass;
    reg.logitErrorEnergy += ps.logitDiffSq;
    reg.logitEnergy += ps.logitSq;
    reg.keys += b - a;
    sums.kl += ps.massLogitDiff - (r.lseRef - r.lseVar) * ps.mass;
    sums.logitErrorEnergy += ps.logitDiffSq;
    sums.logitEnergy += ps.logitSq;
  }
}

void addRecall(const RowContext& r, const RowRegions& g, int64_t* top, AttentionSums& sums) {
  const int n = attn::topK(r.in->isa, r.sVar, g.m, r.in->settings->topK, top);
  for (int i = 0; i < n; ++i) {
    const float p = r.pRef[top[i]];
    sums.regions[static_cast<size_t>(g.of(top[i]))].recalledMass += p;
    sums.recalledMass += p;
  }
}

// Output errors, whole and per region: o_R = sum_{j in R} p_j v_j; the rest's
// contribution is o minus the sink's and the recent keys'.
void addOutputSums(const RowContext& r, const RowRegions& g, float* tmp, AttentionSums& sums) {
  const int Dp = r.in->dimPadded, D = r.in->dim;
  float* sinkVar = tmp;
  float* recentVar = tmp + Dp;
  float* restRef = tmp + 2 * Dp;
  std::fill(tmp, tmp + 2 * Dp, 0.0f);
  if (r.exactWindow) {  // the window reads exact values: o~ += sum_{value window} p~ (v - v~)
    attn::accumulateRows(r.in->isa, r.pVar, *r.vExact, r.seqStart, g.valueWindowBegin, g.m, r.oVar, r.vVar);
  }
  const bool sinkExact = r.exactWindow && g.valueWindowBegin == 0;
  attn::accumulateRows(r.in->isa, r.pVar, sinkExact ? *r.vExact : *r.vVar, r.seqStart, 0, 1, sinkVar);
  attn::accumulateRows(r.in->isa, r.pVar, r.exactWindow ? *r.vExact : *r.vVar, r.seqStart, g.recentBegin, g.m,
                       recentVar);
  double restError = 0;
  for (int c = 0; c < D; ++c) {
    restRef[c] = r.oRef[c] - r.sinkRef[c] - r.recentRef[c];
    const double d = static_cast<double>(restRef[c]) - (r.oVar[c] - sinkVar[c] - recentVar[c]);
    restError += d * d;
  }
  const double error = squaredDistance(r.oRef, r.oVar, D);
  double energy = 0;
  for (int c = 0; c < D; ++c) energy += static_cast<double>(r.oRef[c]) * r.oRef[c];
  sums.outputErrorEnergy += error;
  sums.outputEnergy += energy;
  sums.regions[0].outputErrorEnergy += squaredDistance(r.sinkRef, sinkVar, D);
  sums.regions[1].outputErrorEnergy += squaredDistance(r.recentRef, recentVar, D);
  sums.regions[2].outputErrorEnergy += restError;
}

class BlockRunner {
 public:
  BlockRunner(const HeadInputs& in, const AttentionQueries& q, Scratch& sc) : m_in(in), m_q(q), m_sc(sc) {}

  // out: [variants][G] sums of this block.
  void run(const Block& b, std::vector<std::vector<AttentionSums>>& out) {
    const int G = m_q.heads, Dp = m_in.dimPadded;
    m_block = b;
    m_rows = static_cast<int>(b.count * G);
    m_rowsPadded = static_cast<int>(roundUp(m_rows, kRowTile));
    m_lead = b.seqStart % kPanel;
    m_cols = blockColumns(b.seqStart, b.lastPos);
    // Keys past the dump's end are zero panels for the logits, never read by the weighted sum.
    m_colsPv = std::min(m_cols, m_in.tokens - (b.seqStart - m_lead));
    m_sc.fit(m_rowsPadded, m_cols, Dp, m_in.settings->topK);
    loadQueries();
    reference();
    const auto& variants = *m_in.variants;
    for (size_t v = 0; v < variants.size(); ++v) {
      // KIVI with its window right after plain KIVI of the same keys: only the window's logits change.
      const bool reuse = v > 0 && variants[v].exactWindow && !variants[v - 1].exactWindow &&
                         m_in.packedOf[v] == m_in.packedOf[v - 1];
      variant(v, reuse, out[v]);
    }
  }

 private:
  int64_t keyBegin() const { return m_block.seqStart - m_lead; }
  int64_t rowKeys(int r) const { return m_q.positions[m_block.first + r / m_q.heads] - m_block.seqStart + 1; }

  void loadQueries() {
    const int G = m_q.heads, D = m_in.dim, Dp = m_in.dimPadded;
    std::fill(m_sc.q.begin(), m_sc.q.end(), 0.0f);
    const auto scale = static_cast<float>(m_in.settings->scale);
    for (int r = 0; r < m_rows; ++r) {
      const float* src = m_q.data + ((m_block.first + r / G) * G + r % G) * D;
      for (int c = 0; c < D; ++c) m_sc.q[static_cast<size_t>(r) * Dp + c] = src[c] * scale;
    }
  }

  // Logits of every row (rows past m_rows are zero queries), softmax per row.
  void logitsAndSoftmax(const attn::PackedKeys& keys, float* s, float* p, double* lse, bool computeLogits) {
    if (computeLogits)
      attn::logits(m_in.isa, m_sc.q.data(), m_rowsPadded, keys, keyBegin(), m_cols, s, m_cols);
    // Zero where no softmax writes: before the sequence start and the padding rows.
    for (int r = 0; r < m_rows; ++r) {
      const int64_t off = static_cast<int64_t>(r) * m_cols + m_lead;
      std::fill(p + off - m_lead, p + off, 0.0f);
      lse[r] = attn::softmax(m_in.isa, s + off, rowKeys(r), m_cols - m_lead, p + off);
    }
    std::fill(p + static_cast<int64_t>(m_rows) * m_cols, p + static_cast<int64_t>(m_rowsPadded) * m_cols,
              0.0f);
  }

  void reference() {
    const int Dp = m_in.dimPadded;
    logitsAndSoftmax(m_in.packed[0], m_sc.sRef.data(), m_sc.pRef.data(), m_sc.lseRef.data(), true);
    attn::weightedSum(m_in.isa, m_sc.pRef.data(), m_rowsPadded, m_cols, m_colsPv, m_in.values[0], keyBegin(),
                      m_sc.oRef.data());
    std::fill(m_sc.sinkRef.begin(), m_sc.sinkRef.end(), 0.0f);
    std::fill(m_sc.recentRef.begin(), m_sc.recentRef.end(), 0.0f);
    for (int r = 0; r < m_rows; ++r) {
      const RowRegions g(rowKeys(r), m_in.settings->recentWindow);
      const float* p = m_sc.pRef.data() + static_cast<int64_t>(r) * m_cols + m_lead;
      const attn::PackedValues& vs = m_in.values[0];
      attn::accumulateRows(m_in.isa, p, vs, m_block.seqStart, 0, 1, m_sc.sinkRef.data() + r * Dp);
      attn::accumulateRows(m_in.isa, p, vs, m_block.seqStart, g.recentBegin, g.m,
                           m_sc.recentRef.data() + r * Dp);
    }
  }

  // reuseLogits: variant v is KIVI with its window right after plain KIVI of the same keys,
  // whose logits and output are still in the scratch; only the window's logits change.
  void variant(size_t v, bool reuseLogits, std::vector<AttentionSums>& out) {
    const AttentionVariant& var = (*m_in.variants)[v];
    float* sVar = m_sc.sVar.data();
    const attn::PackedValues& vVar = m_in.values[m_in.valuesOf[v]];
    // The same values too: the output follows from plain KIVI's with sums over the window.
    const bool deriveOutput = reuseLogits && m_in.valuesOf[v] == m_in.valuesOf[v - 1];
    if (deriveOutput) windowOutputs(vVar, m_sc.oWindow.data());  // plain KIVI's p, before it changes
    if (!reuseLogits)
      attn::logits(m_in.isa, m_sc.q.data(), m_rowsPadded, m_in.packed[m_in.packedOf[v]], keyBegin(), m_cols,
                   sVar, m_cols);
    if (var.exactWindow) {  // the key window's logits are the exact ones
      for (int r = 0; r < m_rows; ++r) {
        const RowRegions g(rowKeys(r), m_in.settings->recentWindow);
        const int64_t off = static_cast<int64_t>(r) * m_cols + m_lead;
        std::copy(m_sc.sRef.data() + off + g.keyWindowBegin, m_sc.sRef.data() + off + g.m,
                  sVar + off + g.keyWindowBegin);
      }
    }
    logitsAndSoftmax(m_in.packed[0], sVar, m_sc.pVar.data(), m_sc.lseVar.data(), false);
    if (deriveOutput) {
      deriveWindowOutputs(vVar);
    } else {
      attn::weightedSum(m_in.isa, m_sc.pVar.data(), m_rowsPadded, m_cols, m_colsPv, vVar, keyBegin(),
                        m_sc.oVar.data());
    }
    addVariantSums(v, vVar, out);
    std::copy(m_sc.lseVar.begin(), m_sc.lseVar.end(), m_sc.lsePrevious.begin());
  }

  // w[r] = sum over row r's key window of p_j v_j, with the current p (rows of Dp).
  void windowOutputs(const attn::PackedValues& values, float* w) const {
    const int Dp = m_in.dimPadded;
    for (int r = 0; r < m_rows; ++r) {
      const RowRegions g(rowKeys(r), m_in.settings->recentWindow);
      float* wr = w + static_cast<int64_t>(r) * Dp;
      std::fill(wr, wr + Dp, 0.0f);
      attn::accumulateRows(m_in.isa, m_sc.pVar.data() + static_cast<int64_t>(r) * m_cols + m_lead, values,
                           m_block.seqStart, g.keyWindowBegin, g.m, wr);
    }
  }

  // Outside the key window the logits did not change, so p'_j = p_j f with f = exp(L - L'),
  // L and L' the log-normalisers before and after: o' = f o + (w' - f w), where o and w are
  // plain KIVI's output and its window part (oVar and oWindow on entry) and w' the window
  // part with p'. When the window changes nothing, f = 1 and w' = w exactly: o' = o.
  void deriveWindowOutputs(const attn::PackedValues& values) {
    const int Dp = m_in.dimPadded, D = m_in.dim;
    float* wNew = m_sc.tmp.data();
    for (int r = 0; r < m_rows; ++r) {
      const RowRegions g(rowKeys(r), m_in.settings->recentWindow);
      const auto f = static_cast<float>(
          std::exp(m_sc.lsePrevious[static_cast<size_t>(r)] - m_sc.lseVar[static_cast<size_t>(r)]));
      std::fill(wNew, wNew + Dp, 0.0f);
      attn::accumulateRows(m_in.isa, m_sc.pVar.data() + static_cast<int64_t>(r) * m_cols + m_lead, values,
                           m_block.seqStart, g.keyWindowBegin, g.m, wNew);
      float* o = m_sc.oVar.data() + static_cast<int64_t>(r) * Dp;
      const float* w = m_sc.oWindow.data() + static_cast<int64_t>(r) * Dp;
      for (int c = 0; c < D; ++c) o[c] = f * o[c] + (wNew[c] - f * w[c]);
    }
  }

  // Every row's contributions to variant v's sums (oVar holds the variant's outputs).
  void addVariantSums(size_t v, const attn::PackedValues& vVar, std::vector<AttentionSums>& out) {
    const AttentionVariant& var = (*m_in.variants)[v];
    const int Dp = m_in.dimPadded, G = m_q.heads;
    float* sVar = m_sc.sVar.data();
    for (int r = 0; r < m_rows; ++r) {
      const RowRegions g(rowKeys(r), m_in.settings->recentWindow);
      const int64_t off = static_cast<int64_t>(r) * m_cols + m_lead;
      RowContext ctx;
      ctx.in = &m_in;
      ctx.sRef = m_sc.sRef.data() + off;
      ctx.pRef = m_sc.pRef.data() + off;
      ctx.sVar = sVar + off;
      ctx.pVar = m_sc.pVar.data() + off;
      ctx.lseRef = m_sc.lseRef[static_cast<size_t>(r)];
      ctx.lseVar = m_sc.lseVar[static_cast<size_t>(r)];
      ctx.oRef = m_sc.oRef.data() + r * Dp;
      ctx.sinkRef = m_sc.sinkRef.data() + r * Dp;
      ctx.recentRef = m_sc.recentRef.data() + r * Dp;
      ctx.oVar = m_sc.oVar.data() + r * Dp;
      ctx.vExact = &m_in.values[0];
      ctx.vVar = &vVar;
      ctx.seqStart = m_block.seqStart;
      ctx.exactWindow = var.exactWindow;
      AttentionSums& sums = out[static_cast<size_t>(r % G)];
      addLogitSums(ctx, g, sums);
      addRecall(ctx, g, m_sc.top.data(), sums);
      addOutputSums(ctx, g, m_sc.tmp.data(), sums);
      sums.queries += 1;
      sums.keys += g.m;
    }
  }

  const HeadInputs& m_in;
  const AttentionQueries& m_q;
  Scratch& m_sc;
  Block m_block;
  int m_rows = 0, m_rowsPadded = 0;
  int64_t m_lead = 0, m_cols = 0, m_colsPv = 0;
};

void checkArguments(const AttentionSettings& s, int64_t tokens, int dim,
                    const std::vector<AttentionVariant>& variants, const AttentionQueries& q) {
  if (!(s.scale > 0) || s.topK < 1 || s.topK > 256 || s.recentWindow < 1 || s.blockFloats < 1)
    throwInternal("accumulateAttention", "settings out of range (scale > 0, topK 1..256, recentWindow >= 1)");
  if (tokens < 1 || dim < 1 || q.heads < 1 || (q.count > 0 && (q.data == nullptr || q.positions == nullptr)))
    throwInternal("accumulateAttention", "empty keys or queries");
  for (const AttentionVariant& v : variants) {
    if (v.keys == nullptr || v.values == nullptr)
      throwInternal("accumulateAttention", "variant without data");
  }
  for (int64_t i = 0; i < q.count; ++i) {
    const int64_t pos = q.positions[i], start = q.sequenceStarts[i];
    if (start < 0 || pos < start || pos >= tokens || (i > 0 && pos <= q.positions[i - 1])) {
      throwInternal(
          "accumulateAttention",
          "query positions must ascend, each within its sequence, below T (query " + std::to_string(i) + ")");
    }
  }
}

}  // namespace

const char* keyRegionName(KeyRegion region) {
  switch (region) {
    case KeyRegion::Sink:
      return "sink";
    case KeyRegion::Recent:
      return "recent";
    case KeyRegion::Rest:
      break;
  }
  return "rest";
}

void RegionSums::merge(const RegionSums& o) {
  mass += o.mass;
  recalledMass += o.recalledMass;
  kl += o.kl;
  logitErrorEnergy += o.logitErrorEnergy;
  logitEnergy += o.logitEnergy;
  outputErrorEnergy += o.outputErrorEnergy;
  keys += o.keys;
}

double AttentionSums::outputRelativeError() const {
  return ratio(outputErrorEnergy, outputEnergy);
}
double AttentionSums::meanKl() const {
  return ratio(kl, static_cast<double>(queries));
}
double AttentionSums::logitRelativeError() const {
  return ratio(logitErrorEnergy, logitEnergy);
}
double AttentionSums::massRecall() const {
  return ratio(recalledMass, static_cast<double>(queries));
}
double AttentionSums::regionOutputError(KeyRegion r) const {
  return ratio(regions[static_cast<size_t>(r)].outputErrorEnergy, outputEnergy);
}
double AttentionSums::regionMeanKl(KeyRegion r) const {
  return ratio(regions[static_cast<size_t>(r)].kl, static_cast<double>(queries));
}
double AttentionSums::regionLogitError(KeyRegion r) const {
  const RegionSums& g = regions[static_cast<size_t>(r)];
  return ratio(g.logitErrorEnergy, g.logitEnergy);
}
double AttentionSums::regionRecall(KeyRegion r) const {
  const RegionSums& g = regions[static_cast<size_t>(r)];
  return ratio(g.recalledMass, g.mass);
}
double AttentionSums::regionMassShare(KeyRegion r) const {
  return ratio(regions[static_cast<size_t>(r)].mass, static_cast<double>(queries));
}

void AttentionSums::merge(const AttentionSums& o) {
  queries += o.queries;
  keys += o.keys;
  outputErrorEnergy += o.outputErrorEnergy;
  outputEnergy += o.outputEnergy;
  kl += o.kl;
  logitErrorEnergy += o.logitErrorEnergy;
  logitEnergy += o.logitEnergy;
  recalledMass += o.recalledMass;
  for (int r = 0; r < kKeyRegions; ++r)
    regions[static_cast<size_t>(r)].merge(o.regions[static_cast<size_t>(r)]);
}

void accumulateAttention(const AttentionSettings& settings, int64_t tokens, int dim, const float* keys,
                         const float* values, const std::vector<AttentionVariant>& variants,
                         const AttentionQueries& queries, std::vector<std::vector<AttentionSums>>& sums,
                         const TaskControl* control) {
  checkArguments(settings, tokens, dim, variants, queries);
  const size_t V = variants.size(), G = static_cast<size_t>(queries.heads);
  if (sums.empty()) sums.assign(V, std::vector<AttentionSums>(G));
  if (sums.size() != V || sums[0].size() != G)
    throwInternal("accumulateAttention", "sums have the wrong shape");
  HeadInputs in;
  in.isa = cpu::detectIsa();
  in.settings = &settings;
  in.variants = &variants;
  in.tokens = tokens;
  in.dim = dim;
  in.prepare(keys, values);

  const std::vector<Block> blocks = makeBlocks(queries, settings.blockFloats);
  std::vector<std::vector<std::vector<AttentionSums>>> blockSums(
      blocks.size(), std::vector<std::vector<AttentionSums>>(V, std::vector<AttentionSums>(G)));
  std::vector<Scratch> scratch(static_cast<size_t>(omp_get_max_threads()));
  std::exception_ptr error;
  const auto nb = static_cast<int64_t>(blocks.size());
  constexpr int64_t kBatch = 16;  // blocks between cancellation checks and progress reports
  for (int64_t b0 = 0; b0 < nb; b0 += kBatch) {
    checkCancel(control);
    const int64_t b1 = std::min(nb, b0 + kBatch);
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = b0; b < b1; ++b) {
      try {
        BlockRunner(in, queries, scratch[static_cast<size_t>(omp_get_thread_num())])
            .run(blocks[b], blockSums[b]);
      } catch (...) {
#pragma omp critical(kvq_attention_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    reportProgress(control, static_cast<double>(b1) / static_cast<double>(nb), "attention");
  }
  for (const auto& block : blockSums) {
    for (size_t v = 0; v < V; ++v) {
      for (size_t g = 0; g < G; ++g) sums[v][g].merge(block[v][g]);
    }
  }
}

}  // namespace kvq
