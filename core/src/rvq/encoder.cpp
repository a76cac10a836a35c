#include "kvq/rvq/encoder.h"

#include <string>

#include "kvq/base/error.h"

namespace kvq {

void encodeRvq(const float* x, int64_t n, const Codebooks& books, const RvqConfig& config, Backend& backend,
               int32_t* codes, double* depthError) {
  if (config.beamWidth <= 1) {
    backend.encodeGreedy(x, n, books, codes, depthError, nullptr);
  } else {
    backend.encodeBeam(x, n, books, config.beamWidth, codes, depthError, nullptr);
  }
}

void decodeRvq(const int32_t* codes, int64_t n, const Codebooks& books, int stages, float* out) {
  if (stages < 0 || stages > books.depth) {
    throwInternal("decodeRvq",
                  "stages " + std::to_string(stages) + " outside 0.." + std::to_string(books.depth));
  }
  const int K = books.depth;
  const int g = books.dim;
  for (int64_t i = 0; i < n * K; ++i) {
    if (i % K < stages && (codes[i] < 0 || codes[i] >= books.size)) {
      throwBadInput("", "vector " + std::to_string(i / K) + " stage " + std::to_string(i % K),
                    "code " + std::to_string(codes[i]) + " outside the codebook of " +
                        std::to_string(books.size) + " entries");
    }
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* o = out + i * g;
    for (int d = 0; d < g; ++d) o[d] = 0.0f;
    for (int k = 0; k < stages; ++k) {
      const int32_t c = codes[i * K + k];
      const float* e = books.entry(k, c);
      for (int d = 0; d < g; ++d) o[d] += e[d];
    }
  }
}

}  // namespace kvq
