#include "model/fast_exp.h"

#include <immintrin.h>

#include <cmath>

#include "rvq/cpu_kernels.h"  // cpu::detectIsa: the ISA (and KVQ_CPU_ISA) every CPU kernel follows

namespace kvq::model {

namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;
constexpr float kMinArg = -87.0f;
constexpr float kMaxArg = 88.0f;  // exp(88) = 1.65e38 is still finite
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f,
                kP3 = 4.1665795894e-2f, kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;

#define KVQ_AVX512 __attribute__((target("avx512f,fma")))

// GCC 12's AVX-512 intrinsics seed their results with _mm512_undefined_ps(), which its own
// -Wmaybe-uninitialized then reports at -O3; the values are fully defined.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// exp(v - shift) of 16 lanes.
KVQ_AVX512 inline __m512 exp512(__m512 v, __m512 shift) {
  v = _mm512_min_ps(_mm512_max_ps(_mm512_sub_ps(v, shift), _mm512_set1_ps(kMinArg)), _mm512_set1_ps(kMaxArg));
  const __m512 fn = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Hi), v);
  r = _mm512_fnmadd_ps(fn, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fn), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

KVQ_AVX512 double expSumAvx512(const float* x, int64_t n, float shift, float* out) {
  const __m512 vshift = _mm512_set1_ps(shift);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp512(_mm512_loadu_ps(x + i), vshift);
    _mm512_storeu_ps(out + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = exp512(_mm512_mask_loadu_ps(vshift, mask, x + i), vshift);
    _mm512_mask_storeu_ps(out + i, mask, e);
    acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mask, e));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc);
  double sum = 0;
  for (float l : lanes) sum += l;
  return sum;
}
#pragma GCC diagnostic pop

__attribute__((target("avx2,fma"))) double expSumAvx2(const float* x, int64_t n, float shift, float* out) {
  const __m256 vshift = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v =
        _mm256_min_ps(_mm256_max_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vshift), _mm256_set1_ps(kMinArg)),
                      _mm256_set1_ps(kMaxArg));
    const __m256 fn = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(kLog2e)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Hi), v);
    r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kP0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fn), _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    _mm256_storeu_ps(out + i, y);
    acc = _mm256_add_ps(acc, y);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  double sum = 0;
  for (float l : lanes) sum += l;
  for (; i < n; ++i) {
    out[i] = std::exp(x[i] - shift);
    sum += out[i];
  }
  return sum;
}

double expSumScalar(const float* x, int64_t n, float shift, float* out) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = std::exp(x[i] - shift);
    sum += out[i];
  }
  return sum;
}

}  // namespace

double expShiftedSum(const float* x, int64_t n, float shift, float* out) {
  switch (cpu::detectIsa()) {
    case cpu::Isa::Avx512:
      return expSumAvx512(x, n, shift, out);
    case cpu::Isa::Avx2:
      return expSumAvx2(x, n, shift, out);
    default:
      return expSumScalar(x, n, shift, out);
  }
}

const char* fastExpIsa() {
  switch (cpu::detectIsa()) {
    case cpu::Isa::Avx512:
      return "avx512";
    case cpu::Isa::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

}  // namespace kvq::model
