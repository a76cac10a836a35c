// Bit-exact IEEE binary16 / bfloat16 conversions, round to nearest, ties to even.
#include "kvq/base/half.h"

#include <cstring>

namespace kvq {
namespace {

uint32_t floatBits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

float bitsFloat(uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// Shifts m right by `shift` bits, rounding to nearest, ties to even.
uint32_t shiftRoundEven(uint32_t m, int shift) {
  const uint32_t kept = m >> shift;
  const uint32_t rest = m & ((uint32_t{1} << shift) - 1);
  const uint32_t halfway = uint32_t{1} << (shift - 1);
  return kept + ((rest > halfway || (rest == halfway && (kept & 1u) != 0)) ? 1u : 0u);
}

}  // namespace

float halfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign != 0 ? -magnitude : magnitude;
  }
  if (exponent == 0x1F) return bitsFloat(sign | 0x7F800000u | (mantissa << 13));  // inf / NaN
  return bitsFloat(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

uint16_t floatToHalf(float f) {
  const uint32_t x = floatBits(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t magnitude = x & 0x7FFFFFFFu;
  if (magnitude >= 0x7F800000u) {
    if (magnitude == 0x7F800000u) return sign | 0x7C00u;
    // NaN: keep the top payload bits and force a quiet NaN so it never becomes inf.
    return static_cast<uint16_t>(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
  }
  // 65520 is halfway between 65504 (largest half) and 65536; ties go to the even one, inf.
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;
  if (magnitude >= 0x38800000u) {
    // Normal half: rebias the exponent; a carry out of the mantissa bumps the exponent.
    const uint32_t rebased = magnitude - (uint32_t{127 - 15} << 23);
    return static_cast<uint16_t>(sign | shiftRoundEven(rebased, 13));
  }
  // Below 2^-25 (or exactly 2^-25, a tie to even zero) rounds to zero.
  if (magnitude <= 0x33000000u) return sign;
  // Subnormal half: value / 2^-24 = m * 2^(e - 126) with the implicit bit restored.
  const uint32_t m = (magnitude & 0x7FFFFFu) | 0x800000u;
  const int e = static_cast<int>(magnitude >> 23);
  return static_cast<uint16_t>(sign | shiftRoundEven(m, 126 - e));
}

float bfloat16ToFloat(uint16_t b) {
  return bitsFloat(static_cast<uint32_t>(b) << 16);
}

uint16_t floatToBfloat16(float f) {
  const uint32_t x = floatBits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  // Round to nearest even on the low 16 bits; overflow into the exponent is the
  // correct result (up to inf).
  const uint32_t rounded = x + 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

}  // namespace kvq
