// Internal: the arithmetic of the attention metrics (attention_metrics.cpp), in
// blocks of query rows against the keys of one kv head.
//
// Every kernel exists for three instruction sets, picked at run time as the RVQ
// kernels are (rvq/cpu_kernels.h, KVQ_CPU_ISA lowers it): AVX-512F, AVX2+FMA and
// a baseline path (SSE2 on x86-64). One source serves all three: the kernels are
// templates over GCC vector types of W floats, inlined into functions compiled
// with the matching target attribute. Sums run over whole rows in a fixed order,
// so a row's result does not depend on the other rows of its block or on threads;
// it may differ between instruction sets in the last bits (FMA contraction).
//
// Shapes: dimensions are padded to Dp (a multiple of 16) with zero channels, which
// change no product; query rows to a multiple of kRowTile; logit rows hold whole
// tiles of kKeyTile keys.
#pragma once

#include <cstdint>
#include <vector>

#include "rvq/cpu_kernels.h"

namespace kvq::attn {

using cpu::Isa;

constexpr int kPanel = 16;       // keys per packed panel
constexpr int kKeyTile = 48;     // keys per logit tile (a logit row's length is a multiple)
constexpr int kRowTile = 8;      // query rows per tile (a block's row count is a multiple)
constexpr int kValuePanel = 16;  // channels per packed value panel

// head_dim rounded up to a multiple of 16.
int paddedDim(int dim);

// The keys of one head laid out for logits(): panels of kPanel keys stored
// dimension-major ([dimPadded][kPanel]), zero beyond the last key, with one whole
// spare tile so that any tile starting below `tokens` can be read.
struct PackedKeys {
  int64_t tokens = 0;
  int dimPadded = 0;
  std::vector<float> data;  // [panels][dimPadded][kPanel]

  // keys: [T, D] row-major float32
  void pack(const float* keys, int64_t T, int D);
};

// The values of one head laid out for weightedSum(): panels of kValuePanel
// channels, each token-major ([tokens][kValuePanel]), zero in the padding channels.
// A tile of channels then reads consecutive cache lines as it walks the keys
// (row-major values put every key of a tile on a few L1 sets).
struct PackedValues {
  int64_t tokens = 0;
  int dimPadded = 0;
  std::vector<float> data;  // [dimPadded / kValuePanel][tokens][kValuePanel]

  // values: [T, D] row-major float32
  void pack(const float* values, int64_t T, int D);
  // The first channel of panel `panel` at token t; channels follow with stride 1.
  const float* panelAt(int panel, int64_t t) const {
    return data.data() + (static_cast<int64_t>(panel) * tokens + t) * kValuePanel;
  }
  float at(int64_t t, int c) const { return panelAt(c / kValuePanel, t)[c % kValuePanel]; }
};

// s[r * lds + c] = sum_d q[r * Dp + d] * key(keyBegin + c)[d]
//   q: [rows, Dp] with rows a multiple of kRowTile; keyBegin a multiple of kPanel;
//   cols a multiple of kKeyTile with keyBegin + cols <= the packed keys plus one tile.
void logits(Isa isa, const float* q, int rows, const PackedKeys& keys, int64_t keyBegin, int64_t cols,
            float* s, int64_t lds);

// o[r * Dp + ch] = sum_{c < cols} p[r * ldp + c] * v.at(keyBegin + c, ch)
//   p: [rows, ldp] (rows a multiple of kRowTile); keyBegin + cols <= v.tokens;
//   o: [rows, Dp] out, Dp = v.dimPadded.
void weightedSum(Isa isa, const float* p, int rows, int64_t ldp, int64_t cols, const PackedValues& v,
                 int64_t keyBegin, float* o);

// out[c] += sum_{j in [a, b)} p[j] * v.at(start + j, c) for c < v.dimPadded; with
// minus (the same shape), p[j] * (v.at(..) - minus->at(..)). out: [v.dimPadded].
void accumulateRows(Isa isa, const float* p, const PackedValues& v, int64_t start, int64_t a, int64_t b,
                    float* out, const PackedValues* minus = nullptr);

// Softmax of s[0, m): p[c] = exp(s[c] - lse) for c < m and 0 for m <= c < n.
// Returns lse = log sum_c exp(s[c]) (the exponentials are summed in double).
double softmax(Isa isa, const float* s, int64_t m, int64_t n, float* p);

// Sums over c in [a, b) that the metrics need (accumulated in double).
struct PairSums {
  double mass = 0;           // sum p
  double massLogitDiff = 0;  // sum p (s - st)
  double logitDiffSq = 0;    // sum (s - st)^2
  double logitSq = 0;        // sum s^2
};
PairSums pairSums(Isa isa, const float* p, const float* s, const float* st, int64_t a, int64_t b);

// The indices of the k largest s[c], c < m (all of them when m <= k), written to
// top; ties go to the larger index (the more recent key). Returns how many.
int topK(Isa isa, const float* s, int64_t m, int k, int64_t* top);

}  // namespace kvq::attn
