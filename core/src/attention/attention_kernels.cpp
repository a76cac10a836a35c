// Attention kernels (attention_kernels.h): one template source, three ISAs.
// Built with -ffp-contract=fast (core/CMakeLists.txt) so that `acc += a * b` on
// the vector types becomes a fused multiply-add where the target has one.
#include "attention/attention_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

// The vector types below are wider than the baseline ISA; they only cross
// function boundaries inside always-inline helpers, so the ABI note of -Wpsabi
// ("vector argument without AVX enabled changes the ABI") does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace kvq::attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// (An alias template would drop the attribute; a member typedef keeps it.)
template <int W>
struct VectorTypes {
  typedef float F __attribute__((vector_size(W * sizeof(float))));      // NOLINT(modernize-use-using)
  typedef int32_t I __attribute__((vector_size(W * sizeof(int32_t))));  // NOLINT(modernize-use-using)
};
template <int W>
using Vf = typename VectorTypes<W>::F;
template <int W>
using Vi = typename VectorTypes<W>::I;

#define KVQ_INLINE [[gnu::always_inline]] inline

template <int W>
KVQ_INLINE Vf<W> load(const float* p) {
  Vf<W> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int W>
KVQ_INLINE void store(float* p, const Vf<W>& v) {
  std::memcpy(p, &v, sizeof v);
}
template <int W>
KVQ_INLINE Vf<W> splat(float x) {
  return Vf<W>{} + x;
}
template <int W>
KVQ_INLINE Vf<W> vmax(const Vf<W>& a, const Vf<W>& b) {
  return a > b ? a : b;
}
template <int W>
KVQ_INLINE double hsum(const Vf<W>& v) {  // lanes in order, in double
  double s = 0;
  for (int l = 0; l < W; ++l) s += static_cast<double>(v[l]);
  return s;
}
template <int W>
KVQ_INLINE float hmax(const Vf<W>& v) {
  float m = v[0];
  for (int l = 1; l < W; ++l) m = std::max(m, v[l]);
  return m;
}

// exp(x) for x <= 0 (softmax arguments), relative error ~2 ulp: Cephes' expf
// (range reduction by ln 2 in two parts, degree-5 polynomial, 2^n by exponent
// bits). Arguments below -87 (and -inf) give exactly 0.
template <int W>
KVQ_INLINE Vf<W> expNonPositive(Vf<W> x) {
  const Vf<W> lo = splat<W>(-87.0f);
  const Vi<W> under = x < lo;
  x = under ? lo : x;
  x = x > splat<W>(0.0f) ? splat<W>(0.0f) : x;
  const Vf<W> magic = splat<W>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  Vf<W> fx = x * 1.44269504088896341f;
  fx = (fx + magic) - magic;
  Vf<W> r = x - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  Vf<W> y = splat<W>(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const Vi<W> n = __builtin_convertvector(fx, Vi<W>);
  const Vf<W> scale = std::bit_cast<Vf<W>>((n + 127) << 23);
  const Vf<W> out = y * scale;
  return under ? Vf<W>{} : out;
}

// ---- logits: S = Q K^T over packed key panels --------------------------------

template <int W, int RT, int CV>
KVQ_INLINE void logitsT(const float* q, int rows, const PackedKeys& keys, int64_t keyBegin, int64_t cols,
                        float* s, int64_t lds) {
  static_assert(kPanel % W == 0 && kKeyTile % (CV * W) == 0 && kRowTile % RT == 0);
  const int Dp = keys.dimPadded;
  const float* base = keys.data.data();
  for (int64_t c0 = 0; c0 < cols; c0 += CV * W) {
    const float* panel[CV];
    for (int c = 0; c < CV; ++c) {
      const int64_t key = keyBegin + c0 + c * W;
      panel[c] = base + (key / kPanel) * Dp * kPanel + key % kPanel;
    }
    for (int r0 = 0; r0 < rows; r0 += RT) {
      // Loops over acc are unrolled in full so that it lives in registers (an
      // array indexed in a loop would be zeroed and stored through the stack).
      Vf<W> acc[RT][CV];
#pragma GCC unroll 16
      for (int r = 0; r < RT; ++r) {
#pragma GCC unroll 8
        for (int c = 0; c < CV; ++c) acc[r][c] = Vf<W>{};
      }
      const float* qr = q + static_cast<int64_t>(r0) * Dp;
      for (int d = 0; d < Dp; ++d) {
        Vf<W> kv[CV];
#pragma GCC unroll 8
        for (int c = 0; c < CV; ++c) kv[c] = load<W>(panel[c] + d * kPanel);
#pragma GCC unroll 16
        for (int r = 0; r < RT; ++r) {
          const float qv = qr[r * Dp + d];
#pragma GCC unroll 8
          for (int c = 0; c < CV; ++c) acc[r][c] += qv * kv[c];
        }
      }
#pragma GCC unroll 16
      for (int r = 0; r < RT; ++r) {
#pragma GCC unroll 8
        for (int c = 0; c < CV; ++c) store<W>(s + (r0 + r) * lds + c0 + c * W, acc[r][c]);
      }
    }
  }
}

// ---- weighted sum: O = P V ------------------------------------------------------

// One tile of RT rows x CV*W channels over keys [j0, j1), accumulating into o;
// panel[c] is vector c's first lane at key 0 (consecutive keys kValuePanel apart).
template <int W, int RT, int CV>
KVQ_INLINE void weightedTile(const float* p, int64_t ldp, int64_t j0, int64_t j1, const float* const* panel,
                             int Dp, float* o) {
  Vf<W> acc[RT][CV];  // in registers: every loop over it is unrolled in full
#pragma GCC unroll 16
  for (int r = 0; r < RT; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c) acc[r][c] = load<W>(o + r * Dp + c * W);
  }
  for (int64_t j = j0; j < j1; ++j) {
    Vf<W> vv[CV];
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c) vv[c] = load<W>(panel[c] + j * kValuePanel);
#pragma GCC unroll 16
    for (int r = 0; r < RT; ++r) {
      const float pv = p[r * ldp + j];
#pragma GCC unroll 8
      for (int c = 0; c < CV; ++c) acc[r][c] += pv * vv[c];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RT; ++r) {
#pragma GCC unroll 8
    for (int c = 0; c < CV; ++c) store<W>(o + r * Dp + c * W, acc[r][c]);
  }
}

// Channels in tiles of up to CV vectors; a narrower last tile takes fewer.
template <int W, int RT, int CV>
KVQ_INLINE void weightedSumT(const float* p, int rows, int64_t ldp, int64_t cols, const PackedValues& v,
                             int64_t keyBegin, float* o) {
  static_assert(kRowTile % RT == 0 && kValuePanel % W == 0);
  constexpr int64_t kKeyBlock = 256;  // keys of V kept in L1 while every row tile passes
  const int Dp = v.dimPadded;
  std::fill(o, o + static_cast<int64_t>(rows) * Dp, 0.0f);
  for (int64_t j0 = 0; j0 < cols; j0 += kKeyBlock) {
    const int64_t j1 = std::min(cols, j0 + kKeyBlock);
    for (int ch = 0; ch < Dp; ch += CV * W) {
      const int vectors = std::min(CV, (Dp - ch) / W);
      const float* panel[CV];
      for (int c = 0; c < vectors; ++c) {
        const int channel = ch + c * W;
        panel[c] = v.panelAt(channel / kValuePanel, keyBegin) + channel % kValuePanel;
      }
      for (int r0 = 0; r0 < rows; r0 += RT) {
        const float* pr = p + r0 * ldp;
        float* orow = o + static_cast<int64_t>(r0) * Dp + ch;
        switch (vectors) {
          case 1:
            weightedTile<W, RT, 1>(pr, ldp, j0, j1, panel, Dp, orow);
            break;
          case 2:
            if constexpr (CV >= 2) weightedTile<W, RT, 2>(pr, ldp, j0, j1, panel, Dp, orow);
            break;
          case 3:
            if constexpr (CV >= 3) weightedTile<W, RT, 3>(pr, ldp, j0, j1, panel, Dp, orow);
            break;
          default:
            weightedTile<W, RT, CV>(pr, ldp, j0, j1, panel, Dp, orow);
            break;
        }
      }
    }
  }
}

// A few rows of P V for one query (windows, the sink): whole value panels, in registers.
template <int W>
KVQ_INLINE void accumulateRowsT(const float* p, const PackedValues& v, int64_t start, int64_t a, int64_t b,
                                float* out, const PackedValues* minus) {
  constexpr int V = kValuePanel / W;
  for (int panel = 0; panel < v.dimPadded / kValuePanel; ++panel) {
    const float* pv = v.panelAt(panel, start);
    float* o = out + panel * kValuePanel;
    Vf<W> acc[V];
#pragma GCC unroll 4
    for (int i = 0; i < V; ++i) acc[i] = load<W>(o + i * W);
    if (minus != nullptr) {
      const float* pm = minus->panelAt(panel, start);
      for (int64_t j = a; j < b; ++j) {
#pragma GCC unroll 4
        for (int i = 0; i < V; ++i)
          acc[i] += p[j] * (load<W>(pv + j * kValuePanel + i * W) - load<W>(pm + j * kValuePanel + i * W));
      }
    } else {
      for (int64_t j = a; j < b; ++j) {
#pragma GCC unroll 4
        for (int i = 0; i < V; ++i) acc[i] += p[j] * load<W>(pv + j * kValuePanel + i * W);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < V; ++i) store<W>(o + i * W, acc[i]);
  }
}

// ---- softmax and row sums ----------------------------------------------------------

template <int W>
KVQ_INLINE double softmaxT(const float* s, int64_t m, int64_t n, float* p) {
  Vf<W> vm = splat<W>(kNegInf);
  int64_t c = 0;
  for (; c + W <= m; c += W) vm = vmax<W>(vm, load<W>(s + c));
  float mx = hmax<W>(vm);
  for (; c < m; ++c) mx = std::max(mx, s[c]);
  const Vf<W> vmx = splat<W>(mx);
  double sum = 0;
  Vf<W> acc = {};
  int pending = 0;
  for (c = 0; c + W <= m; c += W) {
    const Vf<W> e = expNonPositive<W>(load<W>(s + c) - vmx);
    store<W>(p + c, e);
    acc += e;
    if (++pending == 64) {  // float partial sums of at most 64 vectors, then double
      sum += hsum<W>(acc);
      acc = Vf<W>{};
      pending = 0;
    }
  }
  sum += hsum<W>(acc);
  if (c < m) {  // the tail through the same vector code, padded with -inf (exp = 0)
    float tail[W];
    std::fill(tail, tail + W, kNegInf);
    std::copy(s + c, s + m, tail);
    const Vf<W> e = expNonPositive<W>(load<W>(tail) - vmx);
    store<W>(tail, e);
    std::copy(tail, tail + (m - c), p + c);
    sum += hsum<W>(e);
  }
  const auto inv = static_cast<float>(1.0 / sum);
  for (c = 0; c + W <= m; c += W) store<W>(p + c, load<W>(p + c) * inv);
  for (; c < m; ++c) p[c] *= inv;
  std::fill(p + m, p + n, 0.0f);
  return static_cast<double>(mx) + std::log(sum);
}

template <int W>
KVQ_INLINE PairSums pairSumsT(const float* p, const float* s, const float* st, int64_t a, int64_t b) {
  PairSums out;
  Vf<W> mass = {}, pd = {}, dd = {}, ss = {};
  int pending = 0;
  auto flush = [&] {
    out.mass += hsum<W>(mass);
    out.massLogitDiff += hsum<W>(pd);
    out.logitDiffSq += hsum<W>(dd);
    out.logitSq += hsum<W>(ss);
    mass = pd = dd = ss = Vf<W>{};
    pending = 0;
  };
  int64_t c = a;
  for (; c + W <= b; c += W) {
    const Vf<W> pv = load<W>(p + c), sv = load<W>(s + c);
    const Vf<W> d = sv - load<W>(st + c);
    mass += pv;
    pd += pv * d;
    dd += d * d;
    ss += sv * sv;
    if (++pending == 64) flush();
  }
  flush();
  for (; c < b; ++c) {
    const double d = static_cast<double>(s[c]) - st[c];
    out.mass += p[c];
    out.massLogitDiff += p[c] * d;
    out.logitDiffSq += d * d;
    out.logitSq += static_cast<double>(s[c]) * s[c];
  }
  return out;
}

// A candidate of topK: a logit and its key.
struct Candidate {
  float value;
  int64_t key;
};
// a is kept before b: a larger logit, or an equal one of a more recent key.
struct Stronger {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.value > b.value || (a.value == b.value && a.key > b.key);
  }
};

// Appends every s[j] >= threshold, j in [a, b), to out (NaN never).
inline void collectAtLeast(const float* s, int64_t a, int64_t b, float threshold,
                           std::vector<Candidate>& out) {
  for (int64_t j = a; j < b; ++j) {
    if (s[j] >= threshold) out.push_back({s[j], j});
  }
}

// The k largest of s[0, m) scanned from the most recent key backwards:
// the k kept are a heap with the weakest at its root, and a chunk of 4 vectors is read
// element by element only when its maximum beats the root (rare after the first keys).
template <int W>
KVQ_INLINE void topKScanT(const float* s, int64_t m, int k, int64_t* top) {
  constexpr int kChunk = 4 * W;
  Candidate heap[256];
  for (int i = 0; i < k; ++i) heap[i] = {s[m - 1 - i], m - 1 - i};
  std::make_heap(heap, heap + k, Stronger{});
  int64_t c = m - k;
  while (c > 0) {
    const int64_t lo = std::max<int64_t>(0, c - kChunk);
    if (c - lo == kChunk) {
      const float* x = s + lo;
      const Vf<W> mx =
          vmax<W>(vmax<W>(load<W>(x), load<W>(x + W)), vmax<W>(load<W>(x + 2 * W), load<W>(x + 3 * W)));
      if (!(hmax<W>(mx) > heap[0].value)) {
        c = lo;
        continue;
      }
    }
    for (int64_t j = c - 1; j >= lo; --j) {
      if (s[j] > heap[0].value) {  // strictly: an equal older key loses to the recent one
        std::pop_heap(heap, heap + k, Stronger{});
        heap[k - 1] = {s[j], j};
        std::push_heap(heap, heap + k, Stronger{});
      }
    }
    c = lo;
  }
  for (int i = 0; i < k; ++i) top[i] = heap[i].key;
}

// The k largest of long rows in two passes. The maxima of whole chunks (4 vectors) are
// 4k or more distinct elements, so the k-th largest of them is at most the k-th largest
// of s: every element at or above it is a candidate, found in the chunks whose maximum
// reaches it (about k of them) and the tail; the k strongest candidates win. Returns
// how many it found (fewer than k only with NaN in s).
template <int W>
KVQ_INLINE int topKTwoPassT(const float* s, int64_t m, int k, int64_t* top) {
  constexpr int kChunk = 4 * W;
  const int64_t chunks = m / kChunk;
  std::vector<float> chunkMax(static_cast<size_t>(chunks));
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const float* x = s + ch * kChunk;
    const Vf<W> mx =
        vmax<W>(vmax<W>(load<W>(x), load<W>(x + W)), vmax<W>(load<W>(x + 2 * W), load<W>(x + 3 * W)));
    chunkMax[static_cast<size_t>(ch)] = hmax<W>(mx);
  }
  // The k-th largest chunk maximum: a min-heap of the k largest seen (rarely replaced).
  std::vector<float> largest(chunkMax.begin(), chunkMax.begin() + k);
  std::make_heap(largest.begin(), largest.end(), std::greater<>());
  for (int64_t ch = k; ch < chunks; ++ch) {
    const float x = chunkMax[static_cast<size_t>(ch)];
    if (x > largest.front()) {
      std::pop_heap(largest.begin(), largest.end(), std::greater<>());
      largest.back() = x;
      std::push_heap(largest.begin(), largest.end(), std::greater<>());
    }
  }
  float threshold = largest.front();
  std::vector<Candidate> candidates;
  candidates.reserve(4 * static_cast<size_t>(k));
  for (int pass = 0; pass < 2 && candidates.size() < static_cast<size_t>(k); ++pass) {
    if (pass == 1) {  // NaN among the maxima: every element
      threshold = kNegInf;
      candidates.clear();
    }
    for (int64_t ch = 0; ch < chunks; ++ch) {
      if (pass == 1 || chunkMax[static_cast<size_t>(ch)] >= threshold)
        collectAtLeast(s, ch * kChunk, (ch + 1) * kChunk, threshold, candidates);
    }
    collectAtLeast(s, chunks * kChunk, m, threshold, candidates);
  }
  const int n = static_cast<int>(std::min<size_t>(candidates.size(), static_cast<size_t>(k)));
  if (n == 0) return 0;
  std::nth_element(candidates.begin(), candidates.begin() + (n - 1), candidates.end(), Stronger{});
  for (int i = 0; i < n; ++i) top[i] = candidates[static_cast<size_t>(i)].key;
  return n;
}

// The backward scan costs little while replacements are rare and its chunk test is a
// vector maximum; on long rows the two passes touch each element once, in order.
template <int W>
KVQ_INLINE int topKT(const float* s, int64_t m, int k, int64_t* top) {
  if (m <= k) {
    for (int64_t c = 0; c < m; ++c) top[c] = c;
    return static_cast<int>(m);
  }
  if (m / (4 * W) >= 16 * static_cast<int64_t>(k)) return topKTwoPassT<W>(s, m, k, top);
  topKScanT<W>(s, m, k, top);
  return k;
}

#define KVQ_AVX512 __attribute__((target("avx512f,fma")))
#define KVQ_AVX2 __attribute__((target("avx2,fma")))

// AVX-512: logits 8 rows x 32 keys (16 accumulators), weighted sums 4 rows x 64 channels.
KVQ_AVX512 void logits512(const float* q, int rows, const PackedKeys& k, int64_t b, int64_t n, float* s,
                          int64_t ld) {
  logitsT<16, 8, 3>(q, rows, k, b, n, s, ld);
}
KVQ_AVX512 void weighted512(const float* p, int rows, int64_t ldp, int64_t n, const PackedValues& v,
                            int64_t b, float* o) {
  weightedSumT<16, 4, 4>(p, rows, ldp, n, v, b, o);
}
KVQ_AVX512 void rows512(const float* p, const PackedValues& v, int64_t t, int64_t a, int64_t b, float* o,
                        const PackedValues* minus) {
  accumulateRowsT<16>(p, v, t, a, b, o, minus);
}
KVQ_AVX512 double softmax512(const float* s, int64_t m, int64_t n, float* p) {
  return softmaxT<16>(s, m, n, p);
}
KVQ_AVX512 PairSums pairSums512(const float* p, const float* s, const float* st, int64_t a, int64_t b) {
  return pairSumsT<16>(p, s, st, a, b);
}
KVQ_AVX512 int topK512(const float* s, int64_t m, int k, int64_t* top) {
  return topKT<16>(s, m, k, top);
}

// AVX2 (16 registers): logits 4 rows x 16 keys, weighted sums 4 rows x 16 channels.
KVQ_AVX2 void logits256(const float* q, int rows, const PackedKeys& k, int64_t b, int64_t n, float* s,
                        int64_t ld) {
  logitsT<8, 4, 3>(q, rows, k, b, n, s, ld);
}
KVQ_AVX2 void weighted256(const float* p, int rows, int64_t ldp, int64_t n, const PackedValues& v, int64_t b,
                          float* o) {
  weightedSumT<8, 4, 3>(p, rows, ldp, n, v, b, o);
}
KVQ_AVX2 void rows256(const float* p, const PackedValues& v, int64_t t, int64_t a, int64_t b, float* o,
                      const PackedValues* minus) {
  accumulateRowsT<8>(p, v, t, a, b, o, minus);
}
KVQ_AVX2 double softmax256(const float* s, int64_t m, int64_t n, float* p) {
  return softmaxT<8>(s, m, n, p);
}
KVQ_AVX2 PairSums pairSums256(const float* p, const float* s, const float* st, int64_t a, int64_t b) {
  return pairSumsT<8>(p, s, st, a, b);
}
KVQ_AVX2 int topK256(const float* s, int64_t m, int k, int64_t* top) {
  return topKT<8>(s, m, k, top);
}

}  // namespace

int paddedDim(int dim) {
  return (dim + 15) / 16 * 16;
}

void PackedKeys::pack(const float* keys, int64_t T, int D) {
  tokens = T;
  dimPadded = paddedDim(D);
  const int64_t panels = (T + kKeyTile - 1) / kKeyTile * (kKeyTile / kPanel) + kKeyTile / kPanel;
  data.assign(static_cast<size_t>(panels) * dimPadded * kPanel, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    float* dst = data.data() + (t / kPanel) * dimPadded * kPanel + t % kPanel;
    for (int d = 0; d < D; ++d) dst[d * kPanel] = keys[t * D + d];
  }
}

void PackedValues::pack(const float* values, int64_t T, int D) {
  tokens = T;
  dimPadded = paddedDim(D);
  data.assign(static_cast<size_t>(T) * dimPadded, 0.0f);
  for (int64_t t = 0; t < T; ++t) {
    for (int d = 0; d < D; ++d)
      data[(d / kValuePanel * T + t) * kValuePanel + d % kValuePanel] = values[t * D + d];
  }
}

void logits(Isa isa, const float* q, int rows, const PackedKeys& keys, int64_t keyBegin, int64_t cols,
            float* s, int64_t lds) {
  switch (isa) {
    case Isa::Avx512:
      return logits512(q, rows, keys, keyBegin, cols, s, lds);
    case Isa::Avx2:
      return logits256(q, rows, keys, keyBegin, cols, s, lds);
    case Isa::Scalar:
      break;
  }
  logitsT<4, 4, 2>(q, rows, keys, keyBegin, cols, s, lds);
}

void weightedSum(Isa isa, const float* p, int rows, int64_t ldp, int64_t cols, const PackedValues& v,
                 int64_t keyBegin, float* o) {
  switch (isa) {
    case Isa::Avx512:
      return weighted512(p, rows, ldp, cols, v, keyBegin, o);
    case Isa::Avx2:
      return weighted256(p, rows, ldp, cols, v, keyBegin, o);
    case Isa::Scalar:
      break;
  }
  weightedSumT<4, 4, 2>(p, rows, ldp, cols, v, keyBegin, o);
}

void accumulateRows(Isa isa, const float* p, const PackedValues& v, int64_t start, int64_t a, int64_t b,
                    float* out, const PackedValues* minus) {
  switch (isa) {
    case Isa::Avx512:
      return rows512(p, v, start, a, b, out, minus);
    case Isa::Avx2:
      return rows256(p, v, start, a, b, out, minus);
    case Isa::Scalar:
      break;
  }
  accumulateRowsT<4>(p, v, start, a, b, out, minus);
}

double softmax(Isa isa, const float* s, int64_t m, int64_t n, float* p) {
  switch (isa) {
    case Isa::Avx512:
      return softmax512(s, m, n, p);
    case Isa::Avx2:
      return softmax256(s, m, n, p);
    case Isa::Scalar:
      break;
  }
  return softmaxT<4>(s, m, n, p);
}

PairSums pairSums(Isa isa, const float* p, const float* s, const float* st, int64_t a, int64_t b) {
  switch (isa) {
    case Isa::Avx512:
      return pairSums512(p, s, st, a, b);
    case Isa::Avx2:
      return pairSums256(p, s, st, a, b);
    case Isa::Scalar:
      break;
  }
  return pairSumsT<4>(p, s, st, a, b);
}

int topK(Isa isa, const float* s, int64_t m, int k, int64_t* top) {
  switch (isa) {
    case Isa::Avx512:
      return topK512(s, m, k, top);
    case Isa::Avx2:
      return topK256(s, m, k, top);
    case Isa::Scalar:
      break;
  }
  return topKT<4>(s, m, k, top);
}

}  // namespace kvq::attn
