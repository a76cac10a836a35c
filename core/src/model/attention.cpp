#include "model/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/fast_exp.h"

namespace kvq::model {

namespace {

constexpr int64_t kBlock = 64;  // queries per task

// Row softmax over the first `valid` columns of s (in place); columns valid..n-1 become 0.
void softmaxRow(float* s, int64_t valid, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, s[j]);
  const auto sum = static_cast<float>(expShiftedSum(s, valid, mx, s));
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < valid; ++j) s[j] *= inv;
  std::fill(s + valid, s + n, 0.0f);
}

struct Scratch {
  std::vector<float> s, sRecent;
};

// One (head, block) task: rows [i0, i1) of query head h.
void attendBlock(GemmEngine engine, const AttentionInput& in, int h, int64_t i0, int64_t i1, Scratch& w,
                 float* out) {
  const int d = in.headDim;
  const int kv = h / (in.qHeads / in.kvHeads);
  const int64_t kvStride = static_cast<int64_t>(in.kvHeads) * d;
  const int64_t rows = i1 - i0, cols = i1;  // keys 0..i1-1 are visible to some row
  const float* q = in.q + i0 * in.qStride + static_cast<int64_t>(h) * d;
  const float* k = in.k + static_cast<int64_t>(kv) * d;
  const float* v = in.v + static_cast<int64_t>(kv) * d;
  float* o = out + i0 * static_cast<int64_t>(in.qHeads) * d + static_cast<int64_t>(h) * d;
  const int64_t ldo = static_cast<int64_t>(in.qHeads) * d;
  w.s.resize(static_cast<size_t>(rows * cols));
  gemmABt(engine, rows, cols, d, q, in.qStride, k, kvStride, 0.0f, w.s.data(), cols);
  const bool windowed = in.window > 0;
  if (windowed) {
    w.sRecent.resize(w.s.size());
    gemmABt(engine, rows, cols, d, q, in.qStride, in.kRecent + static_cast<int64_t>(kv) * d, kvStride, 0.0f,
            w.sRecent.data(), cols);
  }
  const auto scale = static_cast<float>(std::sqrt(static_cast<double>(d)));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = i0 + r;
    float* s = w.s.data() + r * cols;
    if (windowed) {  // keys at or past the last full group of R (or the last R keys) use full precision
      const int64_t firstRecent =
          in.slidingKeys ? std::max<int64_t>(0, t - in.window + 1) : (t + 1) / in.window * in.window;
      const float* sr = w.sRecent.data() + r * cols;
      for (int64_t j = firstRecent; j <= t; ++j) s[j] = sr[j];
    }
    for (int64_t j = 0; j <= t; ++j) s[j] /= scale;
    softmaxRow(s, t + 1, cols);
  }
  if (!windowed) {
    gemmAB(engine, rows, d, cols, w.s.data(), cols, v, kvStride, 0.0f, o, ldo);
    return;
  }
  // Split P by value precision: t - j < R reads the full-precision value.
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = i0 + r;
    float* p = w.s.data() + r * cols;
    float* pr = w.sRecent.data() + r * cols;
    const int64_t firstRecent = std::max<int64_t>(0, t - in.window + 1);
    std::fill(pr, pr + cols, 0.0f);
    for (int64_t j = firstRecent; j <= t; ++j) {
      pr[j] = p[j];
      p[j] = 0.0f;
    }
  }
  gemmAB(engine, rows, d, cols, w.s.data(), cols, v, kvStride, 0.0f, o, ldo);
  gemmAB(engine, rows, d, cols, w.sRecent.data(), cols, in.vRecent + static_cast<int64_t>(kv) * d, kvStride,
         1.0f, o, ldo);
}

}  // namespace

void causalAttention(GemmEngine engine, const AttentionInput& in, float* out) {
  const int64_t blocks = (in.tokens + kBlock - 1) / kBlock;
  const int64_t tasks = blocks * in.qHeads;
#pragma omp parallel
  {
    Scratch w;
    // Later blocks cost more (more visible keys): hand them out first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t block = blocks - 1 - task / in.qHeads;
      const int h = static_cast<int>(task % in.qHeads);
      const int64_t i0 = block * kBlock, i1 = std::min(in.tokens, i0 + kBlock);
      attendBlock(engine, in, h, i0, i1, w, out);
    }
  }
}

}  // namespace kvq::model
