#include "kernel_replay.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>

#include "kernel_math.h"

namespace kvq::replay {
namespace {

using gpu::kChunkEntries;
using gpu::kErrorTile;
using gpu::kInfF;

// fma chains as the device does them; the target attribute lets the compiler use the FMA
// instruction instead of a libm call (the replays run billions of them).
__attribute__((target("fma"))) float fmaChainFast(const float* m, const float* c, float acc, int g) {
  for (int d = 0; d < g; ++d) acc = __builtin_fmaf(m[d], c[d], acc);
  return acc;
}
float fmaChain(const float* m, const float* c, float acc, int g) {
  static const bool haveFma = __builtin_cpu_supports("fma");
  if (haveFma) return fmaChainFast(m, c, acc, g);
  for (int d = 0; d < g; ++d) acc = std::fma(m[d], c[d], acc);
  return acc;
}

// The exact kernel's distance of m = -2r to entry c (with the replay's defects).
float exactDistance(const float* m, const float* c, float norm, int g, Defect defect) {
  switch (defect) {
    case Defect::NormAddedLast:
      return fmaChain(m, c, 0.0f, g) + norm;
    case Defect::ReversedChannels: {
      float acc = norm;
      for (int d = g - 1; d >= 0; --d) acc = std::fma(m[d], c[d], acc);
      return acc;
    }
    case Defect::SeparateMultiplyAdd: {
      volatile float acc = norm;  // volatile: two roundings, never contracted
      for (int d = 0; d < g; ++d) {
        const volatile float p = m[d] * c[d];
        acc = acc + p;
      }
      return acc;
    }
    default:
      return fmaChain(m, c, norm, g);
  }
}

std::vector<float> stageNorms(const Codebooks& books, int k) {
  std::vector<float> norms(static_cast<size_t>(books.size));
  for (int e = 0; e < books.size; ++e)
    norms[static_cast<size_t>(e)] = gpu::entryNormF(books.entry(k, e), books.dim);
  return norms;
}

// A (distance, index) minimum over lanes by the kernels' butterfly (xor offsets from half
// the width down to 1); tiesHigh: the defect of preferring the higher index on ties.
std::pair<float, int> butterfly(std::vector<std::pair<float, int>> lanes, bool tiesHigh) {
  const size_t width = lanes.size();
  for (size_t offset = width / 2; offset > 0; offset /= 2) {
    std::vector<std::pair<float, int>> next = lanes;
    for (size_t l = 0; l < width; ++l) {
      const auto& o = lanes[l ^ offset];
      const auto& s = lanes[l];
      const bool take = tiesHigh ? (o.first < s.first || (o.first == s.first && o.second > s.second))
                                 : gpu::pairBefore(o.first, o.second, s.first, s.second);
      if (take) next[l] = o;
    }
    lanes = next;
  }
  return lanes[0];
}

// The exact search of greedy_encode.cu for one residual: 16 lanes, lane tx owning entries
// 4tx..4tx+3 of every chunk, each from (+inf, 0) with a strict <.
int32_t exactChoice(const float* r, int g, const float* stage, const std::vector<float>& norms, int C,
                    Defect defect) {
  std::array<float, 512> m{};
  for (int d = 0; d < g; ++d) m[static_cast<size_t>(d)] = -2.0f * r[d];
  std::vector<std::pair<float, int>> lanes(16, {kInfF, 0});
  const bool tiesHigh = defect == Defect::TiesToHighest;
  for (int e = 0; e < C; ++e) {
    const float dist = exactDistance(m.data(), stage + static_cast<int64_t>(e) * g,
                                     norms[static_cast<size_t>(e)], g, defect);
    auto& lane = lanes[static_cast<size_t>((e & (kChunkEntries - 1)) >> 2)];
    if (tiesHigh ? dist <= lane.first : dist < lane.first) lane = {dist, e};
  }
  return butterfly(lanes, tiesHigh).second;
}

struct Choice {
  int32_t code = 0;
  TcStats stats;
};
using Chooser = std::function<Choice(int k, const float* r, double energy)>;

// Greedy encoding with `choose` deciding each stage, the kernels' residual updates and
// energies, and the backend's batched tile sums of the depth error.
EncodeResult encodeWith(const float* x, int64_t n, const Codebooks& books, int64_t chunkVectors,
                        const Chooser& choose, Defect defect, TcStats* stats) {
  const int K = books.depth;
  const int g = books.dim;
  EncodeResult out;
  out.codes.assign(static_cast<size_t>(n) * K, 0);
  out.residual.assign(x, x + n * g);
  out.depthError.assign(static_cast<size_t>(K), 0.0);
  std::vector<double> energies(static_cast<size_t>(n) * K);
  TcStats total;
#pragma omp parallel
  {
    TcStats local;
    std::vector<float> recon(static_cast<size_t>(g));
#pragma omp for schedule(dynamic, 64)
    for (int64_t v = 0; v < n; ++v) {
      float* r = out.residual.data() + v * g;
      std::fill(recon.begin(), recon.end(), 0.0f);
      double energy = 0.0;
      for (int d = 0; d < g; ++d) energy += static_cast<double>(r[d]) * r[d];
      for (int k = 0; k < K; ++k) {
        const Choice choice = choose(k, r, energy);
        local.decisions += choice.stats.decisions;
        local.fallbacks += choice.stats.fallbacks;
        local.reranked += choice.stats.reranked;
        local.worstErrorOverBound = std::max(local.worstErrorOverBound, choice.stats.worstErrorOverBound);
        out.codes[static_cast<size_t>(v * K + k)] = choice.code;
        const float* c = books.entry(k, choice.code);
        energy = 0.0;
        for (int d = 0; d < g; ++d) {
          if (defect == Defect::ResidualFromSum) {
            recon[static_cast<size_t>(d)] += c[d];
            r[d] = x[v * g + d] - recon[static_cast<size_t>(d)];
          } else {
            r[d] -= c[d];
          }
          energy += static_cast<double>(r[d]) * r[d];
        }
        energies[static_cast<size_t>(k) * n + v] = energy;
      }
    }
#pragma omp critical
    {
      total.decisions += local.decisions;
      total.fallbacks += local.fallbacks;
      total.reranked += local.reranked;
      total.worstErrorOverBound = std::max(total.worstErrorOverBound, local.worstErrorOverBound);
    }
  }
  if (stats != nullptr) *stats = total;
  // CudaBackend::encodeBatches + tileErrorKernel: tiles of 256 from each batch start.
  for (int64_t begin = 0; begin < n; begin += chunkVectors) {
    const int64_t end = std::min(n, begin + chunkVectors);
    std::vector<double> batch(static_cast<size_t>(K), 0.0);
    for (int64_t t0 = begin; t0 < end; t0 += kErrorTile) {
      for (int k = 0; k < K; ++k) {
        double s = 0.0;
        for (int64_t v = t0; v < std::min(end, t0 + kErrorTile); ++v)
          s += energies[static_cast<size_t>(k) * n + v];
        if (defect == Defect::ErrorPerBatch) {
          batch[static_cast<size_t>(k)] += s;
        } else {
          out.depthError[static_cast<size_t>(k)] += s;
        }
      }
    }
    if (defect == Defect::ErrorPerBatch) {
      for (int k = 0; k < K; ++k) out.depthError[static_cast<size_t>(k)] += batch[static_cast<size_t>(k)];
    }
  }
  return out;
}

// ---- tensor cores --------------------------------------------------------------------

struct TcStage {
  std::vector<float> norms;       // [C] |c|^2, CPU order
  std::vector<float> tf32;        // [C, g] entries rounded to TF32
  std::vector<uint8_t> shadowed;  // [C] identical to a lower entry: scores -inf
  float cMax = 0.0f;
  int zeroWinner = 0;
};

TcStage prepareTcStage(const Codebooks& books, int k) {
  const int C = books.size;
  const int g = books.dim;
  TcStage s;
  s.norms = stageNorms(books, k);
  s.zeroWinner = gpu::smallestNormEntry(s.norms.data(), C);
  s.tf32.resize(static_cast<size_t>(C) * g);
  s.shadowed.resize(static_cast<size_t>(C));
  gpu::findShadowedEntries(books.stage(k), C, g, s.shadowed.data());
  for (int e = 0; e < C; ++e) {
    const float* c = books.entry(k, e);
    for (int d = 0; d < g; ++d) s.tf32[static_cast<size_t>(e) * g + d] = gpu::roundTf32(c[d]);
    s.cMax = std::max(s.cMax, gpu::entryLengthUp(c, g));
  }
  return s;
}

float towardZero(double v) {
  float f = static_cast<float>(v);
  if (std::fabs(static_cast<double>(f)) > std::fabs(v)) f = std::nextafter(f, 0.0f);
  return f;
}

// acc = -|c|^2/2 + <r~, c~> as the model of the tensor cores computes it.
float mmaScore(const float* rt, const float* ct, float negHalf, int g, MmaModel model, int e) {
  if (negHalf == -kInfF) return -kInfF;  // padding or shadowed: -inf plus finite products
  if (model == MmaModel::WorstCase) {
    double sum = negHalf;
    double size = std::fabs(static_cast<double>(negHalf));
    for (int d = 0; d < g; ++d) {
      const double p = static_cast<double>(rt[d]) * ct[d];
      sum += p;
      size += std::fabs(p);
    }
    const double allowed = (g + 2) * std::ldexp(1.0, -18) * size;  // the bound's gammaAcc
    return static_cast<float>(e % 2 == 0 ? sum + allowed : sum - allowed);
  }
  float acc = negHalf;
  for (int s = 0; s < g; s += 8) {
    double sum = acc;
    for (int d = s; d < std::min(g, s + 8); ++d) sum += static_cast<double>(rt[d]) * ct[d];
    acc = model == MmaModel::Nearest ? static_cast<float>(sum) : towardZero(sum);
  }
  return acc;
}

// The CPU's exact search over every entry (the kernel's fallback): strict < from (+inf, 0).
int32_t fullSearch(const float* m, const float* stage, const std::vector<float>& norms, int C, int g) {
  float best = kInfF;
  int32_t bestIdx = 0;
  for (int e = 0; e < C; ++e) {
    const float d = fmaChain(m, stage + static_cast<int64_t>(e) * g, norms[static_cast<size_t>(e)], g);
    if (d < best) {
      best = d;
      bestIdx = e;
    }
  }
  return bestIdx;
}

struct TcContext {
  const Codebooks* books;
  const std::vector<TcStage>* stages;
  gpu::CandidateBound bound;
  MmaModel model;
  bool measureBound;
  TcDefect defect;
};

// Entry e of the quad thread `tig`: columns 8j + 2tig + {0, 1} of every chunk.
Choice tcChoice(const TcContext& ctx, int k, const float* r, double energy) {
  const Codebooks& books = *ctx.books;
  const TcStage& st = (*ctx.stages)[static_cast<size_t>(k)];
  const int C = books.size;
  const int g = books.dim;
  const float* stage = books.stage(k);
  std::array<float, 64> rt{};
  std::array<float, 64> m{};
  for (int d = 0; d < g; ++d) {
    rt[static_cast<size_t>(d)] = gpu::roundTf32(r[d]);
    m[static_cast<size_t>(d)] = -2.0f * r[d];
  }
  std::vector<float> acc(static_cast<size_t>(C));
  for (int e = 0; e < C; ++e) {
    const float negHalf =
        st.shadowed[static_cast<size_t>(e)] != 0 ? -kInfF : -0.5f * st.norms[static_cast<size_t>(e)];
    acc[static_cast<size_t>(e)] =
        mmaScore(rt.data(), st.tf32.data() + static_cast<size_t>(e) * g, negHalf, g, ctx.model, e);
  }
  Choice out;
  out.stats.decisions = 1;
  if (energy == 0.0) {  // r = 0: every distance is |c|^2, the winner is the stage's zeroWinner
    out.code = st.zeroWinner;
    return out;
  }
  const float rNorm = gpu::residualNorm(energy);
  if (ctx.measureBound) {
    const double b = static_cast<double>(ctx.bound.e1) * rNorm * st.cMax +
                     static_cast<double>(ctx.bound.e2) * st.cMax * st.cMax +
                     static_cast<double>(ctx.bound.e3) * (1.0 + rNorm + st.cMax);
    for (int e = 0; e < C; ++e) {
      const double a = -2.0 * acc[static_cast<size_t>(e)];
      const float d =
          fmaChain(m.data(), stage + static_cast<int64_t>(e) * g, st.norms[static_cast<size_t>(e)], g);
      if (std::isfinite(a) && std::isfinite(d) && b > 0.0)
        out.stats.worstErrorOverBound = std::max(out.stats.worstErrorOverBound, std::fabs(a - d) / b);
    }
  }
  std::array<gpu::TopScores, 4> top{};
  const int padded = (C + kChunkEntries - 1) / kChunkEntries * kChunkEntries;
  for (int e0 = 0; e0 < padded; e0 += 8) {
    for (int tig = 0; tig < 4; ++tig) {
      const int e = e0 + 2 * tig;
      const float a = e < C ? acc[static_cast<size_t>(e)] : -kInfF;
      const float b = e + 1 < C ? acc[static_cast<size_t>(e + 1)] : -kInfF;
      gpu::TopScores& t = top[static_cast<size_t>(tig)];
      if (std::fmax(a, b) > t.v[gpu::kCandidates - 1]) {  // offerPair
        t.offer(a, e);
        t.offer(b, e + 1);
      }
    }
  }
  float accMax = -kInfF;
  for (const auto& t : top) accMax = std::fmax(accMax, t.v[0]);
  if (ctx.defect == TcDefect::NoRerank) {
    int best = INT_MAX;
    for (const auto& t : top) {
      if (t.v[0] == accMax && t.i[0] >= 0) best = std::min(best, t.i[0]);
    }
    out.code = best == INT_MAX ? 0 : best;
    return out;
  }
  const float threshold = ctx.defect == TcDefect::ZeroWindow
                              ? accMax
                              : gpu::candidateThreshold(ctx.bound, rNorm, st.cMax, accMax);
  bool over = !std::isfinite(threshold);
  float bestD = kInfF;
  int bestI = INT_MAX;
  for (const auto& t : top) {
    if (ctx.defect != TcDefect::IgnoreDropped && t.mayHaveDropped(threshold)) over = true;
    for (int p = 0; p < gpu::kCandidates; ++p) {
      const float v = t.v[p];
      const int i = t.i[p];
      if (i < 0 || !(v >= threshold)) continue;
      ++out.stats.reranked;
      const float d =
          fmaChain(m.data(), stage + static_cast<int64_t>(i) * g, st.norms[static_cast<size_t>(i)], g);
      if (gpu::pairBefore(d, i, bestD, bestI)) {
        bestD = d;
        bestI = i;
      }
    }
  }
  if (!(bestD < kInfF)) over = true;
  if (over) {
    out.stats.fallbacks = 1;
    out.code = fullSearch(m.data(), stage, st.norms, C, g);
  } else {
    out.code = bestI;
  }
  return out;
}

}  // namespace

EncodeResult replayExactEncode(const float* x, int64_t n, const Codebooks& books, int64_t chunkVectors,
                               Defect defect) {
  std::vector<std::vector<float>> norms;
  for (int k = 0; k < books.depth; ++k) norms.push_back(stageNorms(books, k));
  const Chooser choose = [&](int k, const float* r, double) {
    Choice c;
    c.code = exactChoice(r, books.dim, books.stage(k), norms[static_cast<size_t>(k)], books.size, defect);
    return c;
  };
  return encodeWith(x, n, books, chunkVectors, choose, defect, nullptr);
}

EncodeResult replayTensorCoreEncode(const float* x, int64_t n, const Codebooks& books, MmaModel model,
                                    TcStats* stats, bool measureBound, TcDefect defect) {
  std::vector<TcStage> stages;
  for (int k = 0; k < books.depth; ++k) stages.push_back(prepareTcStage(books, k));
  const TcContext ctx{&books, &stages, gpu::candidateBound(books.dim), model, measureBound, defect};
  const Chooser choose = [&](int k, const float* r, double energy) { return tcChoice(ctx, k, r, energy); };
  return encodeWith(x, n, books, int64_t{1} << 20, choose, Defect::None, stats);
}

void replayAccumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                      double* sums, int64_t chunkVectors, bool restartPerBatch) {
  for (int64_t begin = 0; begin < n; begin += chunkVectors) {
    const int64_t end = std::min(n, begin + chunkVectors);
    // A stable sort by code: each entry's vectors in vector order.
    std::vector<int64_t> order;
    for (int64_t i = begin; i < end; ++i) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return codes[a] < codes[b]; });
    size_t j = 0;
    for (int e = 0; e < C; ++e) {
      const size_t segment = j;
      while (j < order.size() && codes[order[j]] == e) ++j;
      double count = restartPerBatch ? 0.0 : counts[e];
      for (size_t q = segment; q < j; ++q) count = gpu::addD(count, 1.0);
      counts[e] = restartPerBatch ? counts[e] + count : count;
      for (int d = 0; d < g; ++d) {
        double s = restartPerBatch ? 0.0 : sums[static_cast<int64_t>(e) * g + d];
        for (size_t q = segment; q < j; ++q) s = gpu::addD(s, x[order[q] * g + d]);
        sums[static_cast<int64_t>(e) * g + d] =
            restartPerBatch ? sums[static_cast<int64_t>(e) * g + d] + s : s;
      }
    }
  }
}

void replayEmaUpdate(double* emaCount, double* emaSum, float* codebook, const double* batchCount,
                     const double* batchSum, int C, int g, double decay, double eps, bool fusedMultiplyAdd) {
  const double oneMinus = 1.0 - decay;
  auto blend = [&](double old, double batch) {
    return fusedMultiplyAdd ? std::fma(decay, old, oneMinus * batch)
                            : gpu::emaBlend(decay, oneMinus, old, batch);
  };
  for (int i = 0; i < C; ++i) emaCount[i] = blend(emaCount[i], batchCount[i]);
  for (int64_t j = 0; j < static_cast<int64_t>(C) * g; ++j) emaSum[j] = blend(emaSum[j], batchSum[j]);
  double total = 0.0;
  for (int i = 0; i < C; ++i) total = gpu::addD(total, emaCount[i]);
  if (!(total > 0.0)) return;
  for (int i = 0; i < C; ++i) {
    const double smoothed = gpu::smoothedCount(emaCount[i], eps, total, C);
    for (int d = 0; d < g; ++d) {
      const int64_t j = static_cast<int64_t>(i) * g + d;
      codebook[j] = static_cast<float>(gpu::divD(emaSum[j], smoothed));
    }
  }
}

}  // namespace kvq::replay
