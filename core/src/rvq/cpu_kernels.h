// Internal: the nearest-entry kernels of the CPU backend.
//
// The search distance ("the" reference distance of the CPU engine) of a vector x
// to an entry c is, in float32,
//     dist(x, c) = fma(m[g-1], c[g-1], ... fma(m[1], c[1], fma(m[0], c[0], |c|^2)))
// with m = -2x (exact) and |c|^2 = fma(c[g-1], c[g-1], ... fma(c[0], c[0], 0)),
// i.e. |c|^2 - 2<x, c> accumulated in channel order with fused multiply-adds.
// It equals |x - c|^2 - |x|^2 up to float rounding; every ISA path below computes
// it bit for bit identically, and the argmin takes the lowest index among ties.
// The engine's tests measure how often its argmin differs from that of |x - c|^2
// evaluated in double (near-ties only; docs/engine.md).
//
// Vector paths are compiled with target attributes and picked at run time, so the
// library needs no -march flag: AVX-512F, AVX2+FMA, and a portable scalar path
// (std::fma) for anything else.
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/base/enum_names.h"

namespace kvq::cpu {
enum class Isa { Scalar, Avx2, Avx512 };
}  // namespace kvq::cpu

namespace kvq {
template <>
const std::vector<EnumName<cpu::Isa>>& enumNames<cpu::Isa>();  // "scalar", "AVX2", "AVX-512"
}  // namespace kvq

namespace kvq::cpu {

// The best ISA this CPU supports (KVQ_CPU_ISA=scalar|avx2|avx512 lowers it, for tests).
Isa detectIsa();
const char* isaName(Isa isa);

// A stage codebook laid out for the kernels: entries in blocks of `block`, each block
// stored dimension-major ([g][block]), padded to a whole block with entries of norm
// +inf that never win.
struct PackedCodebook {
  int size = 0;              // C
  int dim = 0;               // g
  int block = 16;            // entries per block (the ISA's register width times its unroll)
  int padded = 0;            // C rounded up to a whole block
  std::vector<float> data;   // [padded / block][g][block]
  std::vector<float> norms;  // [padded]; |c|^2 as defined above, +inf for padding

  // codebook: [C, g] row-major
  void pack(const float* codebook, int C, int g, Isa isa);
};

// |c|^2 in the reference order. c: [g]
float entryNorm(const float* c, int g);

// Nearest entry of `rows` vectors given as m = -2x.
//   m: [rows, g] (rows padded by the caller to a multiple of kRowBlock); codes: [rows] out
constexpr int kRowBlock = 4;
void nearestRows(Isa isa, const float* m, int rows, const PackedCodebook& cb, int32_t* codes);

// Search distances of `rows` vectors to every (padded) entry.
//   m: [rows, g] (rows a multiple of kRowBlock); out: [rows, cb.padded]
void distanceRows(Isa isa, const float* m, int rows, const PackedCodebook& cb, float* out);

}  // namespace kvq::cpu
