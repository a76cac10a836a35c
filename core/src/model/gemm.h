// Internal: the float32 matrix products of the model pass, through OpenBLAS or Eigen.
//
// OpenBLAS (Debian's libopenblas) picks AVX-512/AVX2 kernels at run time, so it is fast without
// a -march flag; Eigen, compiled without one, has SSE2 kernels only (docs/benchmarks.md measures
// both on the model's shapes: OpenBLAS is the default). Either way the products are split over
// the OpenMP threads by output columns and each piece runs single-threaded, so OpenBLAS never
// starts a thread pool of its own beside OpenMP's (on 2 cores two pools spinning at once cost
// more than they give). Called inside an OpenMP parallel region, a product runs on the calling
// thread only.
#pragma once

#include <cstdint>

namespace kvq::model {

enum class GemmEngine { OpenBlas, Eigen };

// The engine the model pass uses: OpenBLAS unless KVQ_GEMM=eigen, or what setGemmEngine chose
// last (the benchmark compares both in one process).
GemmEngine currentGemmEngine();
void setGemmEngine(GemmEngine engine);
const char* gemmEngineName(GemmEngine engine);

// C = A B^T + beta C, all row-major float32.
//   A: [m, k] (row stride lda); B: [n, k] (ldb); C: [m, n] (ldc)
void gemmABt(GemmEngine engine, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc);

// C = A B + beta C, row-major float32.
//   A: [m, k] (lda); B: [k, n] (ldb); C: [m, n] (ldc)
void gemmAB(GemmEngine engine, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace kvq::model
