// Internal: exp over arrays for softmax and log-sum-exp, vectorised with AVX-512 or AVX2 chosen
// at run time (no -march flag needed), std::exp otherwise.
//
// The vector paths use the Cephes single-precision scheme: x = n ln2 + r with |r| <= ln2/2
// (ln2 split in two constants), exp(r) by a degree-6 polynomial, times 2^n built from the
// exponent bits; arguments are clamped to [-87, 88] (below, exp < 1.7e-38 is negligible next to a
// softmax maximum's exp(0) = 1; above, the result would overflow). Relative error within 2 float ulps of
// std::exp.
#pragma once

#include <cstdint>

namespace kvq::model {

// out[i] = exp(x[i] - shift) for i < n (x[i] - shift <= 88); returns the sum of out
// (float lanes, then summed in double). x and out may alias.
//   x, out: [n] float32
double expShiftedSum(const float* x, int64_t n, float shift, float* out);

// The ISA the vector path uses: "avx512", "avx2" or "scalar" (KVQ_CPU_ISA lowers it).
const char* fastExpIsa();

}  // namespace kvq::model
