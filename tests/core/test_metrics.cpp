// Metrics on hand-worked examples (docs/metrics.md).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kvq/rvq/preprocess.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/study/metrics.h"

namespace kvq {
namespace {

TEST(Metrics, RelativeErrorSnrCosineOfTwoVectors) {
  // x = (3,4), (1,0); x~ = (3,3), (0,0): error 1 + 1, signal 25 + 1.
  const std::vector<float> x{3, 4, 1, 0}, xr{3, 3, 0, 0};
  ErrorAccumulator acc;
  acc.add(x.data(), xr.data(), 2, 2);
  const ErrorSums& s = acc.sums();
  EXPECT_DOUBLE_EQ(s.errorEnergy, 2.0);
  EXPECT_DOUBLE_EQ(s.signalEnergy, 26.0);
  EXPECT_DOUBLE_EQ(s.relativeError(), 2.0 / 26.0);
  EXPECT_NEAR(s.snrDb(), 10.0 * std::log10(13.0), 1e-12);
  // cos 1 = 21 / (5 sqrt 18); cos 2 = 0 (x~ is zero)
  EXPECT_NEAR(s.meanCosine(), (21.0 / (5.0 * std::sqrt(18.0)) + 0.0) / 2.0, 1e-12);
  EXPECT_EQ(s.vectors, 2);
}

TEST(Metrics, CosineConventionsForZeroVectors) {
  const float zero[2] = {0, 0}, one[2] = {1, 0}, minus[2] = {-2, 0};
  EXPECT_DOUBLE_EQ(cosineSimilarity(zero, zero, 2), 1.0);
  EXPECT_DOUBLE_EQ(cosineSimilarity(one, zero, 2), 0.0);
  EXPECT_DOUBLE_EQ(cosineSimilarity(one, minus, 2), -1.0);
}

TEST(Metrics, ChunkedAccumulationEqualsOnePass) {
  std::vector<float> x(60), xr(60);
  for (int i = 0; i < 60; ++i) {
    x[i] = std::sin(0.3f * i) + 0.1f * i;
    xr[i] = x[i] + 0.05f * std::cos(1.7f * i);
  }
  ErrorAccumulator whole, a, b;
  whole.add(x.data(), xr.data(), 10, 6);
  a.add(x.data(), xr.data(), 3, 6);
  b.add(x.data() + 18, xr.data() + 18, 7, 6);
  a.merge(b);
  EXPECT_NEAR(a.sums().relativeError(), whole.sums().relativeError(), 1e-15);
  EXPECT_NEAR(a.sums().meanCosine(), whole.sums().meanCosine(), 1e-15);
  EXPECT_EQ(a.sums().vectors, 10);
}

TEST(Metrics, StridedRowsPickOneHead) {
  // Two heads of dim 2 per token; head 1 only.
  const std::vector<float> x{9, 9, 1, 2, 9, 9, 3, 4}, xr{0, 0, 1, 1, 0, 0, 3, 4};
  ErrorAccumulator acc;
  acc.addStrided(x.data() + 2, xr.data() + 2, 2, 2, 4);
  EXPECT_DOUBLE_EQ(acc.sums().errorEnergy, 1.0);
  EXPECT_DOUBLE_EQ(acc.sums().signalEnergy, 1 + 4 + 9 + 16);
}

TEST(Metrics, PerplexityUsageAndDeadEntries) {
  // p = (1/4, 1/4, 0, 1/2): H = 1.5 ln 2, perplexity 2^1.5.
  const StageUsage u = usageFromHistogram({2, 2, 0, 4});
  EXPECT_EQ(u.total, 8);
  EXPECT_EQ(u.deadEntries, 1);
  EXPECT_DOUBLE_EQ(u.fractionUsed, 0.75);
  EXPECT_NEAR(u.perplexity, std::pow(2.0, 1.5), 1e-12);
  // Uniform over C entries: perplexity C.
  EXPECT_NEAR(usageFromHistogram({5, 5, 5, 5, 5}).perplexity, 5.0, 1e-12);
  EXPECT_NEAR(usageFromHistogram({0, 7, 0}).perplexity, 1.0, 1e-12);
}

TEST(Metrics, UsageAccumulatorCountsEachStage) {
  // codes [n=3, K=2], C = 3
  const std::vector<int32_t> codes{0, 2, 0, 1, 1, 1};
  UsageAccumulator acc(2, 3);
  acc.add(codes.data(), 3);
  EXPECT_EQ(acc.stage(0).histogram, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(acc.stage(1).histogram, (std::vector<int64_t>{0, 2, 1}));
  EXPECT_EQ(acc.stage(0).deadEntries, 1);
  EXPECT_EQ(acc.stage(1).deadEntries, 1);
}

TEST(Metrics, BitsPerChannelOfThePaperSetting) {
  // 16 / (8*11/32 + 16/128) = 16 / 2.875 = 5.565...
  const double b = rvqBitsPerChannel(2048, 8, 32, 128);
  EXPECT_DOUBLE_EQ(b, 2.875);
  EXPECT_NEAR(compressionRatio(b), 5.5652173913, 1e-9);
  EXPECT_DOUBLE_EQ(codebookStorageBits(2048, 8, 32), 8.0 * 2048 * 32 * 32);
  // Amortised over 4096 tokens x 4 heads of D = 128: 16 Mbit / 2 M channels = 8 bits more.
  EXPECT_DOUBLE_EQ(amortisedBitsPerChannel(b, 1, 2048, 8, 32, 4096 * 4, 128), 2.875 + 8.0);
}

TEST(Metrics, ErrorByDepthDecodesIncrementallyInOriginalSpace) {
  // D = 4, g = 2, contiguous, K = 2, C = 2. One vector x with scale 2.
  const std::vector<int> order = channelOrder(4, 2, Grouping::Contiguous);
  Codebooks books(2, 2, 2);
  books.data = {1,    0, 0, 1,      // stage 1: entries (1,0), (0,1)
                0.5f, 0, 0, 0.5f};  // stage 2: (0.5,0), (0,0.5)
  const std::vector<float> x{3, 1, 0, 2};
  const std::vector<float> scales{2};
  const std::vector<int32_t> codes{0, 0, 1, 1};  // group 0: (0,0), group 1: (1,1) -> [n*G, K]
  DepthErrorAccumulator acc(1, 2);
  acc.add(x.data(), nullptr, 1, 4, codes.data(), books, order, scales.data());
  // depth 1: x~ = 2*(1,0,0,1) = (2,0,0,2): error 1+1+0+0 = 2; signal 14.
  EXPECT_DOUBLE_EQ(acc.sums(1).errorEnergy, 2.0);
  EXPECT_DOUBLE_EQ(acc.sums(1).relativeError(), 2.0 / 14.0);
  // depth 2: x~ = 2*(1.5,0,0,1.5) = (3,0,0,3): error 0+1+0+1 = 2.
  EXPECT_DOUBLE_EQ(acc.sums(2).errorEnergy, 2.0);
  EXPECT_EQ(acc.sums(0, 2).vectors, 1);
}

TEST(Metrics, ErrorByDepthUnpermutesStridedGroups) {
  // Strided D = 4, g = 2: group 0 = channels {0, 2}, group 1 = {1, 3}.
  const std::vector<int> order = channelOrder(4, 2, Grouping::Strided);
  ASSERT_EQ(order, (std::vector<int>{0, 2, 1, 3}));
  Codebooks books(1, 2, 2);
  books.data = {1, 2, 3, 4};
  const std::vector<float> x{1, 3, 2, 4};  // exactly entry 0 on {0,2} and entry 1 on {1,3}
  const std::vector<float> scales{1};
  const std::vector<int32_t> codes{0, 1};
  DepthErrorAccumulator acc(1, 1);
  acc.add(x.data(), nullptr, 1, 4, codes.data(), books, order, scales.data());
  EXPECT_DOUBLE_EQ(acc.sums(1).errorEnergy, 0.0);
  EXPECT_DOUBLE_EQ(acc.sums(1).meanCosine(), 1.0);
}

}  // namespace
}  // namespace kvq
