// The attention kernels (core/src/attention/attention_kernels.h) on every ISA this
// CPU runs, against double-precision loops over the unpacked arrays: packed key
// panels and value panels, tiles narrower than a kernel's widest, key offsets that
// are not a tile's start, and topK's ties on data with many equal logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attention/attention_kernels.h"  // internal: to check every ISA path
#include "every_isa.h"
#include "test_util.h"

namespace kvq {
namespace {

using attn::Isa;

// dims: head_dim 64 and 128 fill whole tiles; 80 and 3 leave a narrower last tile.
class KernelShapes : public ::testing::TestWithParam<int> {};

TEST_P(KernelShapes, LogitsMatchDoubleDotProducts) {
  const int D = GetParam(), Dp = attn::paddedDim(D), rows = 2 * attn::kRowTile;
  const int64_t T = 301, keyBegin = 2 * attn::kPanel, cols = 4 * attn::kKeyTile;  // reads past T: zero keys
  const std::vector<float> keys = test::normals(static_cast<size_t>(T * D), 1);
  std::vector<float> q(static_cast<size_t>(rows * Dp), 0.0f);
  const std::vector<float> qd = test::normals(static_cast<size_t>(rows * D), 2);
  for (int r = 0; r < rows; ++r) std::copy_n(qd.data() + r * D, D, q.data() + r * Dp);
  attn::PackedKeys packed;
  packed.pack(keys.data(), T, D);
  for (Isa isa : test::availableIsas()) {
    SCOPED_TRACE(cpu::isaName(isa));
    std::vector<float> s(static_cast<size_t>(rows * cols), -1.0f);
    attn::logits(isa, q.data(), rows, packed, keyBegin, cols, s.data(), cols);
    for (int r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t key = keyBegin + c;
        double want = 0;
        for (int d = 0; d < D && key < T; ++d) want += static_cast<double>(q[r * Dp + d]) * keys[key * D + d];
        ASSERT_NEAR(s[r * cols + c], want, 1e-4 * (1 + std::abs(want))) << "row " << r << " key " << key;
      }
    }
  }
}

TEST_P(KernelShapes, WeightedSumMatchesDoubleSums) {
  const int D = GetParam(), Dp = attn::paddedDim(D), rows = 2 * attn::kRowTile;
  const int64_t T = 700, keyBegin = 37, cols = 600;  // more than one key block of the kernel
  const std::vector<float> values = test::normals(static_cast<size_t>(T * D), 3);
  const std::vector<float> p = test::normals(static_cast<size_t>(rows * cols), 4);
  attn::PackedValues packed;
  packed.pack(values.data(), T, D);
  ASSERT_EQ(packed.dimPadded, Dp);
  for (int64_t t : {int64_t{0}, int64_t{5}, T - 1}) {
    for (int c = 0; c < D; ++c) ASSERT_EQ(packed.at(t, c), values[t * D + c]);
    for (int c = D; c < Dp; ++c) ASSERT_EQ(packed.at(t, c), 0.0f);  // padding channels are zero
  }
  for (Isa isa : test::availableIsas()) {
    SCOPED_TRACE(cpu::isaName(isa));
    std::vector<float> o(static_cast<size_t>(rows * Dp), -1.0f);
    attn::weightedSum(isa, p.data(), rows, cols, cols, packed, keyBegin, o.data());
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < Dp; ++c) {
        double want = 0;
        for (int64_t j = 0; j < cols && c < D; ++j)
          want += static_cast<double>(p[r * cols + j]) * values[(keyBegin + j) * D + c];
        ASSERT_NEAR(o[r * Dp + c], want, 1e-3) << "row " << r << " channel " << c;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(HeadDims, KernelShapes, ::testing::Values(3, 64, 80, 128));

// The k largest by brute force: sort by (value desc, key desc), keep k.
std::vector<int64_t> bruteTopK(const std::vector<float>& s, int64_t m, int k) {
  std::vector<int64_t> idx(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) idx[static_cast<size_t>(j)] = j;
  std::sort(idx.begin(), idx.end(),
            [&](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a > b); });
  idx.resize(static_cast<size_t>(std::min<int64_t>(m, k)));
  std::sort(idx.begin(), idx.end());
  return idx;
}

TEST(AttentionKernels, TopKMatchesBruteForceWithTies) {
  std::mt19937_64 rng(5);
  for (Isa isa : test::availableIsas()) {
    SCOPED_TRACE(cpu::isaName(isa));
    for (int64_t m : {1, 5, 31, 32, 33, 100, 1023, 1024, 1025, 5000, 40000}) {
      for (int k : {1, 7, 32, 256}) {
        for (int levels : {4, 50, 0}) {  // few distinct values (ties everywhere), more, continuous
          std::vector<float> s(static_cast<size_t>(m));
          std::uniform_int_distribution<int> level(0, std::max(1, levels) - 1);
          std::normal_distribution<float> g;
          for (float& x : s) x = levels > 0 ? static_cast<float>(level(rng)) : g(rng);
          std::vector<int64_t> top(static_cast<size_t>(k), -1);
          const int n = attn::topK(isa, s.data(), m, k, top.data());
          ASSERT_EQ(n, std::min<int64_t>(m, k)) << "m " << m << " k " << k;
          top.resize(static_cast<size_t>(n));
          std::sort(top.begin(), top.end());
          ASSERT_EQ(top, bruteTopK(s, m, k)) << "m " << m << " k " << k << " levels " << levels;
        }
      }
    }
  }
}

// Logits rising towards the oldest keys: every chunk beats the running k-th largest
// of a scan from the recent end; 9000 keys take the backward scan, 40000 the two passes.
TEST(AttentionKernels, TopKOnLogitsRisingTowardsTheSequenceStart) {
  for (int64_t m : {9000, 40000}) {
    std::vector<float> s(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) s[static_cast<size_t>(j)] = static_cast<float>(m - j) * 0.5f;
    for (Isa isa : test::availableIsas()) {
      std::vector<int64_t> top(32);
      ASSERT_EQ(attn::topK(isa, s.data(), m, 32, top.data()), 32);
      std::sort(top.begin(), top.end());
      EXPECT_EQ(top, bruteTopK(s, m, 32)) << cpu::isaName(isa) << " m " << m;
    }
  }
}

}  // namespace
}  // namespace kvq
