// The arithmetic of the CUDA kernels, shared by the device code and by the host replay
// tests (tests/gpu/kernel_replay.cpp), so that a replay on the host performs the same
// operations in the same order as a thread on the device. Plain C++ when not compiled by
// nvcc: no CUDA header is needed to include it.
//
// Distance order (the CPU backend's, core/src/rvq/cpu_kernels.h): for a residual r and an
// entry c, with m = -2r (exact) and |c|^2 = fma(c[g-1], c[g-1], ... fma(c[0], c[0], 0)),
//     dist = fma(m[g-1], c[g-1], ... fma(m[0], c[0], |c|^2))
// in float32; the argmin takes the lowest index among equal distances, and a NaN or +inf
// distance never wins (every code is 0 when no distance is below +inf).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#ifdef __CUDACC__
#define KVQ_HD __host__ __device__ __forceinline__
#else
#define KVQ_HD inline
#endif

namespace kvq::gpu {

// Codebook layout on the device, prepared once per upload (codebook_pack.cu): each stage
// in chunks of 64 entries, each chunk dimension-major, [K][C/64][g][64], the last chunk
// padded with zero entries whose norm is +inf (they never win). A chunk is one
// contiguous block of g*64 floats that the kernels copy with 16-byte cp.async.
constexpr int kChunkEntries = 64;
// Row stride, in floats, of a chunk in shared memory: 64 + 8, so that the tensor-core
// B fragments (lanes tig*stride + gid) fall on 32 distinct banks.
constexpr int kChunkStride = 72;
// Vectors per tile of the depth-error sums: the CPU backend's tile (cpu_backend.cpp), so
// that the per-tile sums, added in tile order, are the CPU's bit for bit.
constexpr int kErrorTile = 256;

constexpr float kInfF = std::numeric_limits<float>::infinity();

KVQ_HD float fmaF(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// |c|^2 in the CPU's order. c: [g]
KVQ_HD float entryNormF(const float* c, int g) {
  float n = 0.0f;
  for (int d = 0; d < g; ++d) n = fmaF(c[d], c[d], n);
  return n;
}

// True when (d, i) comes before (bestD, bestI): a smaller distance, or an equal one with
// a lower index. NaN never comes before anything.
KVQ_HD bool pairBefore(float d, int i, float bestD, int bestI) {
  return d < bestD || (d == bestD && i < bestI);
}

// x rounded to TF32 (10 mantissa bits), to nearest with ties away from zero, as bit
// operations so that host and device round identically. Inf and NaN pass unchanged.
KVQ_HD float roundTf32(float x) {
  uint32_t u = 0;
#ifdef __CUDA_ARCH__
  u = __float_as_uint(x);
#else
  std::memcpy(&u, &x, sizeof u);
#endif
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float y = 0.0f;
  std::memcpy(&y, &u, sizeof y);
  return y;
#endif
}

// ---- tensor-core candidates ------------------------------------------------------------
// The tensor-core kernel computes, for each entry, acc = -|c|^2/2 + <r~, c~> with r~, c~
// rounded to TF32 and an fp32 tensor-core accumulation, so that A = -2 acc approximates
// the exact distance D above. |A - D| <= B with
//     B = e1 |r| cMax + e2 cMax^2 + e3 (1 + |r| + cMax)
// (docs/gpu.md derives it; cMax bounds every |c| of the stage). The exact winner w then
// has A_w <= min A + 2B, i.e. acc_w >= max acc - B: every entry in that window is
// re-ranked with D, so the chosen entry is exactly the CPU's.
struct CandidateBound {
  float e1 = 0.0f;  // relative to |r| cMax
  float e2 = 0.0f;  // relative to cMax^2
  float e3 = 0.0f;  // absolute (underflow), times (1 + |r| + cMax)
};

// The bound's coefficients for groups of g channels, rounded up. Host only.
inline CandidateBound candidateBound(int g) {
  const double ut = std::ldexp(1.0, -11);  // TF32 rounding to nearest (roundTf32, both operands)
  const double u = std::ldexp(1.0, -24);   // fp32 unit roundoff
  // The tensor cores' fp32 sum of g products and the initial value: 32 times what g + 1
  // truncating fp32 additions could lose, as their internal rounding is not documented.
  const double gammaAcc = (g + 2) * std::ldexp(1.0, -18);
  const double gammaD = g * u / (1.0 - g * u);  // the CPU's chain of g fmas
  const double e1 = 2.0 * (2.0 * ut + ut * ut) + 2.0 * gammaAcc * (1.0 + ut) * (1.0 + ut) + 2.0 * gammaD;
  const double e2 = gammaAcc + gammaD;
  const double e3 = 2.0 * (std::sqrt(static_cast<double>(g)) + g + 1.0) * std::ldexp(1.0, -126);
  const double margin = 1.0 + std::ldexp(1.0, -6);
  auto up = [](double v) {
    const auto f = static_cast<float>(v);
    return static_cast<double>(f) >= v ? f : std::nextafter(f, kInfF);
  };
  return {up(e1 * margin), up(e2 * margin), up(e3 * margin)};
}

// Lowest acc that an entry may have and still be the exact winner, given the highest acc
// accMax of the vector, its residual norm rNorm and the stage's cMax. The window is
// widened by 2^-20 |accMax| for the rounding of this very computation. Not finite when
// any input is not (the caller then searches exactly).
KVQ_HD float candidateThreshold(const CandidateBound& b, float rNorm, float cMax, float accMax) {
  const float window = b.e1 * rNorm * cMax + b.e2 * cMax * cMax + b.e3 * (1.0f + rNorm + cMax);
  return accMax - (window * 1.0625f + std::fabs(accMax) * 9.5367431640625e-07f);  // 2^-20
}

// |r| from its energy (double), as a float that is 0 only when r is 0 (a vector whose
// residual vanished takes the stage's zeroWinner without a search).
KVQ_HD float residualNorm(double energy) {
  const auto norm = static_cast<float>(sqrt(energy));
  return energy > 0.0 && norm == 0.0f ? 0x1p-149f : norm;  // the smallest subnormal
}

// The winner for r = 0, whose distance to every entry is |c|^2 exactly (m = -0 adds
// nothing): the lowest index of the smallest norm, +inf and NaN never winning (0 if no
// norm is finite), as the CPU's strict < from (+inf, 0). norms: [C] in the CPU's order.
inline int smallestNormEntry(const float* norms, int C) {
  float best = kInfF;
  int index = 0;
  for (int e = 0; e < C; ++e) {
    if (norms[e] < best) {
      best = norms[e];
      index = e;
    }
  }
  return index;
}

// The kCandidates highest approximate scores (acc) a thread has seen for one vector, with
// their entries, highest first. Offers arrive in increasing entry order; an offer not
// above the last kept score is dropped, so every dropped entry scores <= v[last].
constexpr int kCandidates = 4;
struct TopScores {
  float v[kCandidates];
  int i[kCandidates];  // -1: empty

  KVQ_HD TopScores() {
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int p = 0; p < kCandidates; ++p) {
      v[p] = -kInfF;
      i[p] = -1;
    }
  }
  // Insertion without branches or run-time indices (the arrays stay in registers): from
  // the end, each slot takes its upper neighbour if the value beats that neighbour, else
  // the value if the value beats the slot, else keeps its own; ties keep the earlier entry.
  KVQ_HD void offer(float value, int index) {
    if (!(value > v[kCandidates - 1])) return;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int p = kCandidates - 1; p > 0; --p) {
      const bool shift = value > v[p - 1];
      const bool place = value > v[p];
      const float nv = shift ? v[p - 1] : (place ? value : v[p]);
      const int ni = shift ? i[p - 1] : (place ? index : i[p]);
      v[p] = nv;
      i[p] = ni;
    }
    if (value > v[0]) {
      v[0] = value;
      i[0] = index;
    }
  }
  // Whether an entry this thread dropped might reach `threshold`: the list is full and its
  // lowest score reaches it. Then the vector is searched exactly instead.
  KVQ_HD bool mayHaveDropped(float threshold) const {
    return i[kCandidates - 1] >= 0 && v[kCandidates - 1] >= threshold;
  }
};

// |c| in double, widened by 1e-12 and rounded up to float: an upper bound of the entry's
// length, as the pack kernel computes it for cMax; +inf when c holds a non-finite value
// (that stage is then searched exactly). c: [g]
KVQ_HD float entryLengthUp(const float* c, int g) {
  double s = 0.0;
  for (int d = 0; d < g; ++d) {
#ifdef __CUDA_ARCH__
    if (!isfinite(c[d])) return kInfF;
#else
    if (!std::isfinite(c[d])) return kInfF;
#endif
    s += static_cast<double>(c[d]) * static_cast<double>(c[d]);  // exact products
  }
  const double length = sqrt(s) * (1.0 + 1e-12);
#ifdef __CUDA_ARCH__
  return __double2float_ru(length);
#else
  const auto f = static_cast<float>(length);
  return static_cast<double>(f) >= length ? f : std::nextafter(f, kInfF);
#endif
}

// Entries that can never be the exact winner because an entry of lower index holds the
// same bits: their distances are equal for every vector, and ties go to the lower index.
// The tensor-core search skips them (score -inf), which changes no result and keeps
// duplicated entries (common in trained codebooks of layers whose keys repeat with the
// token) from crowding the candidate lists. Host only. stage: [C, g]; shadowed: [C] out.
inline void findShadowedEntries(const float* stage, int C, int g, uint8_t* shadowed) {
  const size_t bytes = sizeof(float) * static_cast<size_t>(g);
  auto row = [&](int e) {
    return reinterpret_cast<const unsigned char*>(stage + static_cast<std::ptrdiff_t>(e) * g);
  };
  // (FNV-1a hash of the row's bytes, entry), sorted: identical rows share a run, in entry
  // order; rows of a run are compared byte for byte (hash collisions stay distinct).
  std::vector<std::pair<uint64_t, int>> keys(static_cast<size_t>(C));
  for (int e = 0; e < C; ++e) {
    uint64_t h = 1469598103934665603ull;
    for (size_t b = 0; b < bytes; ++b) h = (h ^ row(e)[b]) * 1099511628211ull;
    keys[static_cast<size_t>(e)] = {h, e};
    shadowed[e] = 0;
  }
  std::sort(keys.begin(), keys.end());
  for (size_t p = 1; p < keys.size(); ++p) {
    for (size_t q = p; q-- > 0 && keys[q].first == keys[p].first;) {
      if (std::memcmp(row(keys[q].second), row(keys[p].second), bytes) == 0) {
        shadowed[keys[p].second] = 1;
        break;
      }
    }
  }
}

// ---- EMA arithmetic ---------------------------------------------------------------------
// Each operation rounded once, never fused into an FMA (nvcc would fuse a*b + c), so that
// the device computes what the CPU's Backend::emaStep computes (core/src/rvq/backend.cpp).

KVQ_HD double mulD(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
KVQ_HD double addD(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
KVQ_HD double divD(double a, double b) {
#ifdef __CUDA_ARCH__
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

// decay * old + (1 - decay) * batch; oneMinusDecay = 1.0 - decay computed once in double.
KVQ_HD double emaBlend(double decay, double oneMinusDecay, double old, double batch) {
  return addD(mulD(decay, old), mulD(oneMinusDecay, batch));
}

// The Laplace-smoothed count (N_i + eps) / (total + C eps) * total.
KVQ_HD double smoothedCount(double count, double eps, double total, int C) {
  const double denom = addD(total, mulD(static_cast<double>(C), eps));
  return mulD(divD(addD(count, eps), denom), total);
}

}  // namespace kvq::gpu
