// IEEE binary16 and bfloat16 conversions against hand-worked bit patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kvq/base/half.h"

namespace kvq {
namespace {

uint32_t bitsOf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
float fromBits(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

TEST(Half, NormalValuesToHalf) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(0.5f), 0x3800);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);          // largest finite half
  EXPECT_EQ(floatToHalf(6.103515625e-05f), 0x0400);  // 2^-14, smallest normal
  EXPECT_EQ(floatToHalf(0.333251953125f), 0x3555);   // exactly representable 1/3 approximation
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
}

TEST(Half, HalfToFloatExact) {
  EXPECT_EQ(halfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(halfToFloat(0xC000), -2.0f);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24));            // smallest subnormal
  EXPECT_EQ(halfToFloat(0x03FF), 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(halfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(bitsOf(halfToFloat(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(halfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(halfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(halfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7C01)));  // signalling payload stays NaN
}

TEST(Half, RoundToNearestEven) {
  // Spacing of halves in [1, 2) is 2^-10. 1 + 2^-11 is a tie between 0x3C00 (even)
  // and 0x3C01: goes down. 1 + 3*2^-11 is a tie between 0x3C01 and 0x3C02 (even): up.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(floatToHalf(1.0f + 3.0f * std::ldexp(1.0f, -11)), 0x3C02);
  // Just above the tie rounds up, just below rounds down.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -20)), 0x3C00);
  // Mantissa carry bumps the exponent: 2 - 2^-12 rounds to 2.0 (0x4000).
  EXPECT_EQ(floatToHalf(2.0f - std::ldexp(1.0f, -12)), 0x4000);
}

TEST(Half, OverflowAndSpecials) {
  EXPECT_EQ(floatToHalf(65519.0f), 0x7BFF);  // below the tie 65520: stays finite
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00);  // tie between 65504 (odd) and 65536: inf
  EXPECT_EQ(floatToHalf(1e6f), 0x7C00);
  EXPECT_EQ(floatToHalf(-1e6f), 0xFC00);
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  const uint16_t nan = floatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);  // NaN, not inf
  // A float NaN whose payload lives only in low bits must not collapse to inf.
  EXPECT_NE(floatToHalf(fromBits(0x7F800001u)) & 0x03FF, 0);
}

TEST(Half, Subnormals) {
  const float tiny = std::ldexp(1.0f, -24);  // half's smallest subnormal
  EXPECT_EQ(floatToHalf(tiny), 0x0001);
  EXPECT_EQ(floatToHalf(3.0f * tiny), 0x0003);
  EXPECT_EQ(floatToHalf(0.5f * tiny), 0x0000);            // tie with 0: even (0)
  EXPECT_EQ(floatToHalf(0.5f * tiny * 1.0001f), 0x0001);  // above the tie
  EXPECT_EQ(floatToHalf(1.5f * tiny), 0x0002);            // tie between 1 and 2: even (2)
  EXPECT_EQ(floatToHalf(2.5f * tiny), 0x0002);            // tie between 2 and 3: even (2)
  EXPECT_EQ(floatToHalf(-tiny), 0x8001);
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -30)), 0x0000);
  // 1023.5 units rounds up to the smallest normal 0x0400 (tie, 1023 odd).
  EXPECT_EQ(floatToHalf(1023.5f * tiny), 0x0400);
}

TEST(Half, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<uint16_t>(h);
    const float f = halfToFloat(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(floatToHalf(f), bits) << "half 0x" << std::hex << h;
  }
}

TEST(BFloat16, HandWorkedValues) {
  EXPECT_EQ(floatToBfloat16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBfloat16(-2.0f), 0xC000);
  EXPECT_EQ(bfloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bfloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(floatToBfloat16(3.14159265f), 0x4049);
  // Spacing in [1, 2) is 2^-7: ties to even.
  EXPECT_EQ(floatToBfloat16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(floatToBfloat16(1.0f + 3.0f * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_EQ(floatToBfloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  // Largest finite bf16 is 0x7F7F; rounding above its tie gives inf.
  EXPECT_EQ(floatToBfloat16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(floatToBfloat16(fromBits(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(floatToBfloat16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(floatToBfloat16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBfloat16(fromBits(0x7F800001u)))));  // low-payload NaN
  EXPECT_EQ(bfloat16ToFloat(0x0001), fromBits(0x00010000u));  // subnormal passes through
}

TEST(BFloat16, EveryBfloat16RoundTrips) {
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float f = bfloat16ToFloat(bits);
    if (std::isnan(f)) continue;
    ASSERT_EQ(floatToBfloat16(f), bits);
  }
}

}  // namespace
}  // namespace kvq
