#include "rvq/cpu_kernels.h"

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace kvq {

template <>
const std::vector<EnumName<cpu::Isa>>& enumNames<cpu::Isa>() {
  static const std::vector<EnumName<cpu::Isa>> names = {
      {cpu::Isa::Scalar, "scalar"}, {cpu::Isa::Avx2, "AVX2"}, {cpu::Isa::Avx512, "AVX-512"}};
  return names;
}

}  // namespace kvq

namespace kvq::cpu {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

int blockFor(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return 64;  // 4 registers of 16
    case Isa::Avx2:
      return 24;  // 3 registers of 8
    case Isa::Scalar:
      break;
  }
  return 16;
}

// Lowest index among the minimal values of `lanes` (value, index) pairs.
inline void reduceLanes(const float* val, const int32_t* idx, int lanes, int32_t* code) {
  float best = val[0];
  int32_t bestIdx = idx[0];
  for (int l = 1; l < lanes; ++l) {
    if (val[l] < best || (val[l] == best && idx[l] < bestIdx)) {
      best = val[l];
      bestIdx = idx[l];
    }
  }
  *code = bestIdx;
}

// ---- scalar (portable; std::fma keeps the rounding of the vector paths) ----------

void nearestScalar(const float* m, int rows, const PackedCodebook& cb, int32_t* codes) {
  const int g = cb.dim;
  const int bs = cb.block;
  for (int r = 0; r < rows; ++r) {
    const float* mr = m + static_cast<size_t>(r) * g;
    float best = kInf;
    int32_t bestIdx = 0;
    for (int b = 0; b < cb.padded / bs; ++b) {
      const float* blk = cb.data.data() + static_cast<size_t>(b) * g * bs;
      for (int l = 0; l < bs; ++l) {
        float acc = cb.norms[static_cast<size_t>(b) * bs + l];
        for (int d = 0; d < g; ++d) acc = std::fma(mr[d], blk[d * bs + l], acc);
        if (acc < best) {
          best = acc;
          bestIdx = b * bs + l;
        }
      }
    }
    codes[r] = bestIdx;
  }
}

void distanceScalar(const float* m, int rows, const PackedCodebook& cb, float* out) {
  const int g = cb.dim;
  const int bs = cb.block;
  for (int r = 0; r < rows; ++r) {
    const float* mr = m + static_cast<size_t>(r) * g;
    float* o = out + static_cast<size_t>(r) * cb.padded;
    for (int b = 0; b < cb.padded / bs; ++b) {
      const float* blk = cb.data.data() + static_cast<size_t>(b) * g * bs;
      for (int l = 0; l < bs; ++l) {
        float acc = cb.norms[static_cast<size_t>(b) * bs + l];
        for (int d = 0; d < g; ++d) acc = std::fma(mr[d], blk[d * bs + l], acc);
        o[b * bs + l] = acc;
      }
    }
  }
}

// ---- AVX-512: 4 rows x 64 entries per step, 16 accumulators -----------------------
// Each lane keeps its own running best (strict <, entries visited in increasing
// index order, so the lowest index wins ties); lanes are reduced once per row.

#define KVQ_AVX512 __attribute__((target("avx512f,fma")))

template <bool kArgmin>
KVQ_AVX512 void rowBlockAvx512(const float* m, const PackedCodebook& cb, int32_t* codes, float* out) {
  constexpr int R = kRowBlock;
  constexpr int V = 4;
  const int g = cb.dim;
  const int blocks = cb.padded / 64;
  __m512 bestV[R];
  __m512i bestI[R];
  for (int r = 0; r < R; ++r) {
    bestV[r] = _mm512_set1_ps(kInf);
    bestI[r] = _mm512_setzero_si512();
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int b = 0; b < blocks; ++b) {
    const float* blk = cb.data.data() + static_cast<size_t>(b) * g * 64;
    const float* nrm = cb.norms.data() + static_cast<size_t>(b) * 64;
    __m512 acc[R][V];
    for (int v = 0; v < V; ++v) {
      const __m512 n = _mm512_loadu_ps(nrm + 16 * v);
      for (int r = 0; r < R; ++r) acc[r][v] = n;
    }
    for (int d = 0; d < g; ++d) {
      __m512 c[V];
      for (int v = 0; v < V; ++v) c[v] = _mm512_loadu_ps(blk + d * 64 + 16 * v);
      for (int r = 0; r < R; ++r) {
        const __m512 xb = _mm512_set1_ps(m[r * g + d]);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(xb, c[v], acc[r][v]);
      }
    }
    if constexpr (kArgmin) {
      for (int v = 0; v < V; ++v) {
        const __m512i idx = _mm512_add_epi32(lane, _mm512_set1_epi32(b * 64 + 16 * v));
        for (int r = 0; r < R; ++r) {
          const __mmask16 lt = _mm512_cmp_ps_mask(acc[r][v], bestV[r], _CMP_LT_OQ);
          bestV[r] = _mm512_mask_mov_ps(bestV[r], lt, acc[r][v]);
          bestI[r] = _mm512_mask_mov_epi32(bestI[r], lt, idx);
        }
      }
    } else {
      for (int r = 0; r < R; ++r) {
        float* o = out + static_cast<size_t>(r) * cb.padded + static_cast<size_t>(b) * 64;
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(o + 16 * v, acc[r][v]);
      }
    }
  }
  if constexpr (kArgmin) {
    alignas(64) float val[16];
    alignas(64) int32_t idx[16];
    for (int r = 0; r < R; ++r) {
      _mm512_store_ps(val, bestV[r]);
      _mm512_store_si512(reinterpret_cast<__m512i*>(idx), bestI[r]);
      reduceLanes(val, idx, 16, codes + r);
    }
  }
}

// ---- AVX2 + FMA: 4 rows x 24 entries per step, 12 accumulators -----------------------
// 12 independent FMA chains hide the FMA latency of two 256-bit pipes (8 were measurably
// latency-bound); the running minima are reloaded once per block.

#define KVQ_AVX2 __attribute__((target("avx2,fma")))

template <bool kArgmin>
KVQ_AVX2 void rowBlockAvx2(const float* m, const PackedCodebook& cb, int32_t* codes, float* out) {
  constexpr int R = kRowBlock;
  constexpr int V = 3;
  constexpr int W = 8 * V;  // entries per block
  const int g = cb.dim;
  const int blocks = cb.padded / W;
  __m256 bestV[R];
  __m256i bestI[R];
  for (int r = 0; r < R; ++r) {
    bestV[r] = _mm256_set1_ps(kInf);
    bestI[r] = _mm256_setzero_si256();
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int b = 0; b < blocks; ++b) {
    const float* blk = cb.data.data() + static_cast<size_t>(b) * g * W;
    const float* nrm = cb.norms.data() + static_cast<size_t>(b) * W;
    __m256 acc[R][V];
    for (int v = 0; v < V; ++v) {
      const __m256 n = _mm256_loadu_ps(nrm + 8 * v);
      for (int r = 0; r < R; ++r) acc[r][v] = n;
    }
    for (int d = 0; d < g; ++d) {
      __m256 c[V];
      for (int v = 0; v < V; ++v) c[v] = _mm256_loadu_ps(blk + d * W + 8 * v);
      for (int r = 0; r < R; ++r) {
        const __m256 xb = _mm256_broadcast_ss(m + r * g + d);
        for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(xb, c[v], acc[r][v]);
      }
    }
    if constexpr (kArgmin) {
      for (int v = 0; v < V; ++v) {
        const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(b * W + 8 * v));
        for (int r = 0; r < R; ++r) {
          const __m256 lt = _mm256_cmp_ps(acc[r][v], bestV[r], _CMP_LT_OQ);
          bestV[r] = _mm256_blendv_ps(bestV[r], acc[r][v], lt);
          bestI[r] = _mm256_castps_si256(
              _mm256_blendv_ps(_mm256_castsi256_ps(bestI[r]), _mm256_castsi256_ps(idx), lt));
        }
      }
    } else {
      for (int r = 0; r < R; ++r) {
        float* o = out + static_cast<size_t>(r) * cb.padded + static_cast<size_t>(b) * W;
        for (int v = 0; v < V; ++v) _mm256_storeu_ps(o + 8 * v, acc[r][v]);
      }
    }
  }
  if constexpr (kArgmin) {
    alignas(32) float val[8];
    alignas(32) int32_t idx[8];
    for (int r = 0; r < R; ++r) {
      _mm256_store_ps(val, bestV[r]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(idx), bestI[r]);
      reduceLanes(val, idx, 8, codes + r);
    }
  }
}

}  // namespace

Isa detectIsa() {
  static const Isa detected = [] {
    __builtin_cpu_init();
    Isa best = Isa::Scalar;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::Avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) best = Isa::Avx512;
    if (const char* env = std::getenv("KVQ_CPU_ISA")) {
      const std::string want(env);
      if (want == "scalar") best = Isa::Scalar;
      if (want == "avx2" && best == Isa::Avx512) best = Isa::Avx2;
    }
    return best;
  }();
  return detected;
}

const char* isaName(Isa isa) {
  return nameOf(isa);
}

float entryNorm(const float* c, int g) {
  float n = 0.0f;
  for (int d = 0; d < g; ++d) n = std::fma(c[d], c[d], n);
  return n;
}

void PackedCodebook::pack(const float* codebook, int C, int g, Isa isa) {
  size = C;
  dim = g;
  block = blockFor(isa);
  padded = (C + block - 1) / block * block;
  data.assign(static_cast<size_t>(padded) * g, 0.0f);
  norms.assign(static_cast<size_t>(padded), kInf);
  for (int i = 0; i < C; ++i) {
    const float* c = codebook + static_cast<size_t>(i) * g;
    const int b = i / block;
    const int l = i % block;
    float* blk = data.data() + static_cast<size_t>(b) * g * block;
    for (int d = 0; d < g; ++d) blk[d * block + l] = c[d];
    norms[static_cast<size_t>(i)] = entryNorm(c, g);
  }
}

void nearestRows(Isa isa, const float* m, int rows, const PackedCodebook& cb, int32_t* codes) {
  const size_t g = static_cast<size_t>(cb.dim);
  switch (isa) {
    case Isa::Avx512:
      for (int r = 0; r < rows; r += kRowBlock) rowBlockAvx512<true>(m + r * g, cb, codes + r, nullptr);
      return;
    case Isa::Avx2:
      for (int r = 0; r < rows; r += kRowBlock) rowBlockAvx2<true>(m + r * g, cb, codes + r, nullptr);
      return;
    case Isa::Scalar:
      break;
  }
  nearestScalar(m, rows, cb, codes);
}

void distanceRows(Isa isa, const float* m, int rows, const PackedCodebook& cb, float* out) {
  const size_t g = static_cast<size_t>(cb.dim);
  const size_t p = static_cast<size_t>(cb.padded);
  switch (isa) {
    case Isa::Avx512:
      for (int r = 0; r < rows; r += kRowBlock) rowBlockAvx512<false>(m + r * g, cb, nullptr, out + r * p);
      return;
    case Isa::Avx2:
      for (int r = 0; r < rows; r += kRowBlock) rowBlockAvx2<false>(m + r * g, cb, nullptr, out + r * p);
      return;
    case Isa::Scalar:
      break;
  }
  distanceScalar(m, rows, cb, out);
}

}  // namespace kvq::cpu
