// IEEE binary16 and bfloat16 <-> float32 conversions (round to nearest even).
#pragma once

#include <cstdint>

namespace kvq {

float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bfloat16ToFloat(uint16_t b);
uint16_t floatToBfloat16(float f);
// Rounds f through fp16 and back (used for the fp16 per-vector scale).
inline float roundToHalf(float f) {
  return halfToFloat(floatToHalf(f));
}

}  // namespace kvq
