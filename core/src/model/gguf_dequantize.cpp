#include "kvq/model/gguf_dequantize.h"

#include <cstring>
#include <utility>

#include "kvq/base/error.h"
#include "kvq/base/half.h"
#include "kvq/model/gguf_file.h"

namespace kvq {

namespace {

float f16At(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return halfToFloat(h);
}

void dequantQ8_0(const uint8_t* b, float* y) {  // fp16 d, int8 q[32]
  const float d = f16At(b);
  for (int i = 0; i < 32; ++i) y[i] = static_cast<float>(static_cast<int8_t>(b[2 + i])) * d;
}

void dequantQ4_0(const uint8_t* b, float* y) {  // fp16 d, nibbles[16]
  const float d = f16At(b);
  const uint8_t* q = b + 2;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * static_cast<float>((q[i] & 0x0F) - 8);
    y[i + 16] = d * static_cast<float>((q[i] >> 4) - 8);
  }
}

void dequantQ4_1(const uint8_t* b, float* y) {  // fp16 d, fp16 m, nibbles[16]
  const float d = f16At(b);
  const float m = f16At(b + 2);
  const uint8_t* q = b + 4;
  for (int i = 0; i < 16; ++i) {
    y[i] = d * static_cast<float>(q[i] & 0x0F) + m;
    y[i + 16] = d * static_cast<float>(q[i] >> 4) + m;
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block's 12 scale bytes.
void scaleMinK4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequantQ4_K(const uint8_t* b, float* y) {  // d, dmin, scales[12], qs[128]
  const float d = f16At(b);
  const float dmin = f16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int chunk = 0; chunk < 4; ++chunk) {  // 64 elements: two sub-blocks sharing 32 bytes
    int sc = 0, m = 0;
    scaleMinK4(2 * chunk, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scaleMinK4(2 * chunk + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    y += 64;
  }
}

void dequantQ5_K(const uint8_t* b, float* y) {  // d, dmin, scales[12], qh[32], qs[128]
  const float d = f16At(b);
  const float dmin = f16At(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int chunk = 0; chunk < 4; ++chunk) {
    int sc = 0, m = 0;
    scaleMinK4(2 * chunk, scales, sc, m);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
    scaleMinK4(2 * chunk + 1, scales, sc, m);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
    const int lowBit = 2 * chunk, highBit = 2 * chunk + 1;
    for (int l = 0; l < 32; ++l) {
      const int q = (ql[l] & 0x0F) | (((qh[l] >> lowBit) & 1) << 4);
      y[l] = d1 * static_cast<float>(q) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int q = (ql[l] >> 4) | (((qh[l] >> highBit) & 1) << 4);
      y[32 + l] = d2 * static_cast<float>(q) - m2;
    }
    ql += 32;
    y += 64;
  }
}

void dequantQ6_K(const uint8_t* b, float* y) {  // ql[128], qh[64], int8 scales[16], fp16 d
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16At(b + 208);
  for (int half = 0; half < 2; ++half) {  // 128 elements: 64 bytes of ql, 32 of qh, 8 scales
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
      y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
    ql += 64;
    qh += 32;
    sc += 8;
    y += 128;
  }
}

// The block decoder of each quantized type; its block layout (elements, bytes) is ggmlTypeInfo's.
using BlockFn = void (*)(const uint8_t* block, float* out);
constexpr std::pair<GgmlType, BlockFn> kBlockDecoders[] = {
    {GgmlType::Q8_0, dequantQ8_0}, {GgmlType::Q4_0, dequantQ4_0}, {GgmlType::Q4_1, dequantQ4_1},
    {GgmlType::Q4_K, dequantQ4_K}, {GgmlType::Q5_K, dequantQ5_K}, {GgmlType::Q6_K, dequantQ6_K}};

// Decodes the n / blockSize whole blocks of a quantized type; false when type is not one.
bool dequantizeBlocks(GgmlType type, const uint8_t* src, int64_t n, float* out) {
  for (const auto& [decoded, decode] : kBlockDecoders) {
    if (decoded != type) continue;
    const GgmlTypeInfo* info = ggmlTypeInfo(static_cast<uint32_t>(type));
    const int64_t blocks = n / info->blockSize;
    for (int64_t i = 0; i < blocks; ++i) decode(src + i * info->typeSize, out + i * info->blockSize);
    return true;
  }
  return false;
}

}  // namespace

void dequantizeGgml(GgmlType type, const uint8_t* src, int64_t n, float* out) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(out, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16At(src + 2 * i);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        out[i] = bfloat16ToFloat(b);
      }
      return;
    default:
      if (dequantizeBlocks(type, src, n, out)) return;
      throwInternal("dequantizeGgml",
                    "type " + ggmlTypeName(static_cast<uint32_t>(type)) + " is not dequantizable");
  }
}

}  // namespace kvq
