// Encoding and decoding of group vectors with trained codebooks.
#pragma once

#include <cstdint>

#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"
#include "kvq/rvq/rvq_config.h"

namespace kvq {

// Encodes n group vectors with the config's method (greedy when beamWidth == 1).
//   codes: [n, K] out; depthError: [K] accumulated (+=) residual energy after k stages (nullable)
void encodeRvq(const float* x, int64_t n, const Codebooks& books, const RvqConfig& config, Backend& backend,
               int32_t* codes, double* depthError);

// Reconstruction from the first `stages` stages (stages <= K).
//   codes: [n, K]; out: [n, g] = sum_{k < stages} books[k][codes[i,k]]
void decodeRvq(const int32_t* codes, int64_t n, const Codebooks& books, int stages, float* out);

}  // namespace kvq
