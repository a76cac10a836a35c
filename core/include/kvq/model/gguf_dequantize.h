// Dequantization of ggml tensor blocks to float32, as the GGUF specification (ggml's reference
// dequantize_row_* functions) defines each block layout. All multi-byte fields little-endian;
// fp16 fields are IEEE binary16. Per block of `type`:
//   F32, F16, BF16  one element per "block"
//   Q8_0  (32, 34 B)   fp16 d, int8 q[32]                          x = q * d
//   Q4_0  (32, 18 B)   fp16 d, 16 bytes: low nibbles are elements 0..15, high nibbles 16..31
//                                                                  x = d * (q - 8)
//   Q4_1  (32, 20 B)   fp16 d, fp16 m, nibbles as Q4_0             x = d * q + m
//   Q4_K  (256, 144 B) fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32,
//                      128 bytes of nibbles (64 elements per 32 bytes: low nibbles first)
//                                                                  x = (d*sc) * q - (dmin*m)
//   Q5_K  (256, 176 B) as Q4_K plus qh[32]: bit 2j / 2j+1 of qh[l] is the 5th bit of element l
//                      of the low / high half of 64-element chunk j
//   Q6_K  (256, 210 B) ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16], fp16 d
//                                                                  x = (d*sc) * (q - 32)
// The float arithmetic is done in float32 in exactly that order (the order of ggml and of the
// gguf package's numpy dequantizers), so results agree bit for bit.
#pragma once

#include <cstdint>

#include "kvq/model/gguf_file.h"

namespace kvq {

// Dequantizes n elements (a whole number of blocks) of `type`.
//   src: n / blockSize * typeSize bytes; out: [n] float32
// Throws Error(Internal) for a type that is not dequantizable (callers check first).
void dequantizeGgml(GgmlType type, const uint8_t* src, int64_t n, float* out);

}  // namespace kvq
