// KIVI-style scalar baseline on hand-worked values.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/study/scalar_baseline.h"
#include "test_util.h"

namespace kvq {
namespace {

TEST(ScalarBaseline, TwoBitPerTokenGroupsExactValues) {
  // One token, one head, D = 8, two groups of 4 channels.
  // Group 1: min 0, max 3.1, scale fp16(3.1/3) = 1058 * 2^-10 = 1.033203125.
  // Group 2: min -1.5, max 0.5, scale fp16(2/3) = 1365 * 2^-11 = 0.66650390625;
  //   (x+1.5)/scale = 0, 1.5004, 2.6257, 3.0007 -> q = 0, 2, 3, 3.
  const Slab in = test::slabOf(1, 1, 8, {0.0f, 1.0f, 2.0f, 3.1f, -1.5f, -0.5f, 0.25f, 0.5f});
  Slab out;
  kiviQuantizeValues(in, {2, 32, 4}, out);
  const std::vector<float> expected{0.0f,  1.033203125f,   2.06640625f,    3.099609375f,
                                    -1.5f, -0.1669921875f, 0.49951171875f, 0.49951171875f};
  ASSERT_EQ(out.data.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_FLOAT_EQ(out.data[i], expected[i]) << i;
}

TEST(ScalarBaseline, KeysPerChannelOverTokenGroups) {
  // T = 4, H = 1, D = 2, n_t = 2. Channel 0: tokens {0, 3} then {10, 10}; channel 1: {1, 2} then {-4, 8}.
  const Slab in = test::slabOf(4, 1, 2, {0, 1, 3, 2, 10, -4, 10, 8});
  Slab out;
  kiviQuantizeKeys(in, {2, 2, 32}, out);
  // {0,3}: scale 1 exact. {1,2}: scale 1/3 -> fp16 0.333251953125, q = 0, 3 -> 1, 1.999755859375.
  // {10,10}: scale 0 -> the zero point. {-4, 8}: scale 4 exact.
  const std::vector<float> expected{0, 1, 3, 1.999755859375f, 10, -4, 10, 8};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_FLOAT_EQ(out.data[i], expected[i]) << i;
}

TEST(ScalarBaseline, KeysGroupsNeverMixHeads) {
  // Two heads: head 0 constant 1, head 1 spans [0, 300]; head 0 must stay exact.
  const Slab in = test::slabOf(2, 2, 1, {1, 0, 1, 300});
  Slab out;
  kiviQuantizeKeys(in, {2, 32, 1}, out);
  EXPECT_FLOAT_EQ(out.data[0], 1.0f);
  EXPECT_FLOAT_EQ(out.data[2], 1.0f);
  EXPECT_FLOAT_EQ(out.data[1], 0.0f);
  EXPECT_FLOAT_EQ(out.data[3], 300.0f);
}

TEST(ScalarBaseline, ErrorShrinksWithBits) {
  std::vector<float> data(64 * 32);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(std::sin(0.37 * i) * (1 + i % 7));
  const Slab in = test::slabOf(64, 1, 32, data);
  double previous = 1e30;
  for (int bits = 2; bits <= 4; ++bits) {
    Slab out;
    kiviQuantizeKeys(in, {bits, 32, 32}, out);
    double err = 0;
    for (size_t i = 0; i < data.size(); ++i) err += (data[i] - out.data[i]) * (data[i] - out.data[i]);
    EXPECT_LT(err, previous) << bits;
    previous = err;
  }
}

TEST(ScalarBaseline, BeyondHalfRangeClampsInsteadOfNaN) {
  // Group {-1e5, 0, 1e5, 2e5}, 2 bits: zero clamps to -65504, scale (3e5/3) to 65504;
  // (x + 65504) / 65504 = -0.53, 1, 2.53, 4.05 -> q = 0, 1, 3, 3.
  const Slab in = test::slabOf(1, 1, 4, {-1e5f, 0.0f, 1e5f, 2e5f});
  Slab out;
  kiviQuantizeValues(in, {2, 32, 4}, out);
  EXPECT_EQ(out.data, (std::vector<float>{-65504.0f, 0.0f, 131008.0f, 131008.0f}));
  // hi - lo overflows float: still finite.
  const Slab wide = test::slabOf(1, 1, 2, {-3e38f, 3e38f});
  kiviQuantizeValues(wide, {4, 32, 2}, out);
  for (float v : out.data) EXPECT_TRUE(std::isfinite(v)) << v;
}

TEST(ScalarBaseline, BitsPerChannel) {
  EXPECT_DOUBLE_EQ(scalarBitsPerChannel(2, 32), 3.0);
  EXPECT_DOUBLE_EQ(scalarBitsPerChannel(4, 128), 4.25);
  EXPECT_DOUBLE_EQ(scalarBitsPerChannel(3, 64), 3.5);
}

TEST(ScalarBaseline, ValidationNamesTheOption) {
  try {
    validateScalarBaseline({2, 32, 48}, 64);
    FAIL() << "expected BadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.where(), "baseline_channel_group");
  }
  EXPECT_THROW(validateScalarBaseline({9, 32, 32}, 64), Error);
  EXPECT_NO_THROW(validateScalarBaseline({4, 128, 64}, 64));
}

}  // namespace
}  // namespace kvq
