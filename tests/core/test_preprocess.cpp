#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/study/channel_weights.h"

namespace kvq {
namespace {

TEST(Preprocess, ChannelOrderByHand) {
  // D = 8, g = 2, G = 4 groups.
  EXPECT_EQ(channelOrder(8, 2, Grouping::Contiguous), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  // strided: group j = {j, j + 4}.
  EXPECT_EQ(channelOrder(8, 2, Grouping::Strided), (std::vector<int>{0, 4, 1, 5, 2, 6, 3, 7}));
  // g = 4, G = 2: group 0 = {0, 2, 4, 6}, group 1 = {1, 3, 5, 7}.
  EXPECT_EQ(channelOrder(8, 4, Grouping::Strided), (std::vector<int>{0, 2, 4, 6, 1, 3, 5, 7}));
  EXPECT_THROW(channelOrder(8, 3, Grouping::Contiguous), Error);
}

TEST(Preprocess, WeightedRoundTripAndErrorByHand) {
  // D = 4, g = 2, contiguous, w = (2, 1, 0.5, 1). Weighted x = (2, 2, 1.5, 4): mean 2.375,
  // squared deviations 0.140625 + 0.140625 + 0.765625 + 2.640625 = 3.6875, /3, sqrt = 1.10868...
  // -> fp16 1.1083984375.
  const std::vector<int> order = channelOrder(4, 2, Grouping::Contiguous);
  const float w[4] = {2, 1, 0.5f, 1};
  const float x[4] = {1, 2, 3, 4};
  float groups[4], scale = 0, back[4];
  scaleAndGroup(x, 1, 4, order, 2, groups, &scale, w);
  EXPECT_EQ(scale, 1.1083984375f);
  EXPECT_FLOAT_EQ(groups[0], 2.0f / scale);
  EXPECT_FLOAT_EQ(groups[2], 1.5f / scale);
  ungroupAndUnscale(groups, &scale, 1, 4, order, 2, back, w);
  for (int c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(back[c], x[c]);
  // An error e in the grouped space is sum_c (s e_c / w_c)^2 ... in x; conversely plain squared
  // error in the grouped space equals sum_c w_c^2 (x_c - x~_c)^2 / s^2. Brute force on a perturbation.
  float moved[4] = {groups[0] + 0.1f, groups[1], groups[2] - 0.2f, groups[3] + 0.05f};
  float xr[4];
  ungroupAndUnscale(moved, &scale, 1, 4, order, 2, xr, w);
  double grouped = 0, weighted = 0;
  for (int c = 0; c < 4; ++c) {
    grouped += (moved[c] - groups[c]) * (moved[c] - groups[c]);
    weighted += w[c] * w[c] * (x[c] - xr[c]) * (x[c] - xr[c]);
  }
  EXPECT_NEAR(weighted / (scale * scale), grouped, 1e-6);
  // By hand: channel 2 moved by -0.2 in the grouped space = -0.2 s / 0.5 in x.
  EXPECT_NEAR(xr[2] - x[2], -0.4 * scale, 1e-5);
}

TEST(Preprocess, CentredRoundTripByHand) {
  // Two token-major vectors of heads 0 and 1 (meanRows = 2), D = 4, g = 2, contiguous; the
  // scale is the centred vector's sample std (x's own would be 1.7078 and 1.2910).
  // Head 0: (2, 3, 4, 6) - (1, 1, 1, 3) = (1, 2, 3, 3): std 0.95743 -> fp16 0.95751953125.
  // Head 1: (1, 2, 3, 4) - (0, 2, 0, 0) = (1, 0, 3, 4): std 1.82574 -> fp16 1.826171875.
  const std::vector<int> order = channelOrder(4, 2, Grouping::Contiguous);
  const float means[8] = {1, 1, 1, 3, 0, 2, 0, 0};
  const float x[8] = {2, 3, 4, 6, 1, 2, 3, 4};
  float groups[8], scales[2], back[8];
  scaleAndGroup(x, 2, 4, order, 2, groups, scales, nullptr, means, 2);
  EXPECT_EQ(scales[0], 0.95751953125f);
  EXPECT_EQ(scales[1], 1.826171875f);
  const float centred[8] = {1, 2, 3, 3, 1, 0, 3, 4};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(groups[i], centred[i] / scales[i / 4]) << i;
  ungroupAndUnscale(groups, scales, 2, 4, order, 2, back, nullptr, means, 2);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(back[i], x[i]) << i;
  // One head's vectors with that head's row (meanRows = 1), weights applied after centring:
  // w = (1, 2, 1, 2): (1, 0, 3, 4) -> (1, 0, 3, 8), std 3.55903 -> fp16 3.55859375.
  const float w[4] = {1, 2, 1, 2};
  scaleAndGroup(x + 4, 1, 4, order, 2, groups, scales, w, means + 4, 1);
  EXPECT_EQ(scales[0], 3.55859375f);
  const float weighted[4] = {1, 0, 3, 8};
  for (int c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(groups[c], weighted[c] / scales[0]) << c;
  ungroupAndUnscale(groups, scales, 1, 4, order, 2, back, w, means + 4, 1);
  for (int c = 0; c < 4; ++c) EXPECT_FLOAT_EQ(back[c], x[4 + c]) << c;
}

TEST(Preprocess, ChannelMeansChecked) {
  checkChannelMeans({}, 2, 4, "f.h5", "/m");  // none: fine
  checkChannelMeans(std::vector<float>(8, 0.5f), 2, 4, "f.h5", "/m");
  EXPECT_THROW(checkChannelMeans(std::vector<float>(4, 0.5f), 2, 4, "f.h5", "/m"), Error);
  std::vector<float> bad(8, 0.0f);
  bad[6] = std::nanf("");
  try {
    checkChannelMeans(bad, 2, 4, "f.h5", "/m");
    FAIL() << "a NaN mean was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "/m head 1 channel 2");
  }
}

TEST(Preprocess, QueryWeightsAverageRotaryPairsByHand) {
  // D = 4, half layout, rope_dim 4: pairs (0, 2), (1, 3). Two query rows:
  // E[q^2] = (2.5, 0, 0.5, 10) -> pairs (1.5, 5, 1.5, 5), mean 3.25 -> w^2 = 1.5/3.25, 5/3.25.
  QuerySecondMoments m(4);
  const float q[8] = {1, 0, 1, 4, 2, 0, 0, -2};
  m.add(q, 2);
  const std::vector<float> w = m.weights(RopeLayout::Half, 4);
  EXPECT_FLOAT_EQ(w[0], std::sqrt(1.5f / 3.25f));
  EXPECT_FLOAT_EQ(w[2], std::sqrt(1.5f / 3.25f));
  EXPECT_FLOAT_EQ(w[1], std::sqrt(5.0f / 3.25f));
  EXPECT_FLOAT_EQ(w[3], std::sqrt(5.0f / 3.25f));
  // Interleaved: pairs (0, 1), (2, 3): (1.25, 1.25, 5.25, 5.25), mean 3.25.
  const std::vector<float> v = m.weights(RopeLayout::Interleaved, 4);
  EXPECT_FLOAT_EQ(v[1], std::sqrt(1.25f / 3.25f));
  EXPECT_FLOAT_EQ(v[3], std::sqrt(5.25f / 3.25f));
}

TEST(Preprocess, VectorScaleByHand) {
  // mean 2.5, squared deviations 5, / (D-1) = 5/3, sqrt = 1.29099..., fp16 -> 1322/1024.
  const float a[4] = {1, 2, 3, 4};
  EXPECT_EQ(vectorScale(a, 4), 1.291015625f);
  // sqrt(2) = 1.41421... -> fp16 1448/1024.
  const float b[2] = {0, 2};
  EXPECT_EQ(vectorScale(b, 2), 1.4140625f);
  const float c[4] = {3, 3, 3, 3};
  EXPECT_EQ(vectorScale(c, 4), 1.0f);
  const float z[3] = {0, 0, 0};
  EXPECT_EQ(vectorScale(z, 3), 1.0f);
  // std 1000 is exact in fp16.
  const float d[2] = {-500 * 1.41421356237f, 500 * 1.41421356237f};
  EXPECT_EQ(vectorScale(d, 2), 1000.0f);
}

TEST(Preprocess, VectorScaleSaturatesAtHalfMax) {
  // std 1.41e6 and ~3e38 are beyond fp16: the scale saturates at 65504 instead of inf.
  const float a[2] = {-1e6f, 1e6f};
  EXPECT_EQ(vectorScale(a, 2), 65504.0f);
  const float b[4] = {-3e38f, 3e38f, 0.0f, 3e38f};
  EXPECT_EQ(vectorScale(b, 4), 65504.0f);
  // Just below the saturation it still rounds to fp16 (spacing 32): 65000 -> 64992.
  const float c[2] = {-32500 * 1.41421356237f, 32500 * 1.41421356237f};
  EXPECT_EQ(vectorScale(c, 2), 64992.0f);
}

TEST(Preprocess, ScaleAndGroupLayoutAndRoundTrip) {
  const int D = 8, g = 2, G = 4;
  const int64_t n = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(static_cast<size_t>(n * D));
  for (float& v : x) v = nd(rng);
  const std::vector<int> order = channelOrder(D, g, Grouping::Strided);
  std::vector<float> groups(x.size()), scales(static_cast<size_t>(n));
  scaleAndGroup(x.data(), n, D, order, g, groups.data(), scales.data());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(scales[i], vectorScale(&x[i * D], D));
    for (int j = 0; j < G; ++j) {
      for (int t = 0; t < g; ++t) {
        // group j of vector i holds channels {j, j + G} divided by the scale.
        EXPECT_EQ(groups[(i * G + j) * g + t], x[i * D + j + t * G] / scales[i]);
      }
    }
  }
  std::vector<float> back(x.size());
  ungroupAndUnscale(groups.data(), scales.data(), n, D, order, g, back.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], 1e-6 * std::abs(x[i]) + 1e-7);
}

}  // namespace
}  // namespace kvq
