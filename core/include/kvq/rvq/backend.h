// Backend — the compute primitives of RVQ training and encoding.
//
// Everything above this interface (trainer, encoder, metrics, pipeline) is
// backend-agnostic. The CPU implementation (cpu_backend.cpp) computes distances
// in cache-sized tiles with hand-vectorised AVX-512/AVX2 kernels (cpu_kernels.h)
// and OpenMP over tiles; the CUDA one lives in gpu/. All arrays are host memory,
// row-major float32 unless stated; a backend may keep device copies internally.
// Distances are squared L2; ties resolve to the lowest index. Results must not
// depend on the number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kvq/rvq/codebooks.h"

namespace kvq {

class Backend {
 public:
  virtual ~Backend() = default;

  // Human-readable, e.g. "CPU (2 threads)" or "CUDA: NVIDIA H200".
  virtual std::string name() const = 0;

  // Nearest entry for each vector.
  //   x: [n, g]; codebook: [C, g]; codes: [n] out; dist: [n] out squared distance (nullable)
  virtual void nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
                       float* dist) = 0;

  // Greedy residual encoding through all stages of `books`.
  //   x: [n, g]; codes: [n, K] out;
  //   depthError: [K] accumulated (+=): sum over vectors of ||r_k||^2 after stages 1..k (nullable)
  //   residual: [n, g] out, the residual after all K stages (nullable)
  virtual void encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes,
                            double* depthError, float* residual) = 0;

  // Beam-search encoding keeping `beam` partial paths per vector (beam = 1 is greedy).
  // Same arrays as encodeGreedy; depthError is that of the finally chosen path.
  virtual void encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                          double* depthError, float* residual) = 0;

  // Per-entry statistics of an assignment (EMA / k-means).
  //   x: [n, g]; codes: [n]; counts: [C] accumulated (+=); sums: [C, g] accumulated (+=)
  virtual void accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                          double* sums) = 0;

  // One EMA step of one stage (docs/metrics.md §4): assign x to its nearest entries,
  //   N_i <- decay*N_i + (1-decay)*n_i,  m_i <- decay*m_i + (1-decay)*sum_{x->i} x,
  //   C[i] = m_i / ((N_i + eps) / (sum N + C*eps) * sum N).
  //   x: [n, g]; codebook: [C, g] in/out; emaCount: [C] in/out; emaSum: [C, g] in/out;
  //   codes: [n] out (nullable). The default runs nearest + accumulate + update on the host.
  virtual void emaStep(const float* x, int64_t n, float* codebook, int C, int g, double decay, double eps,
                       double* emaCount, double* emaSum, int32_t* codes);

  // One Lloyd (k-means) iteration: assign, then move each entry to the mean of its
  // vectors (entries with no vector keep their value). x: [n, g]; codebook: [C, g]
  // in/out; counts: [C] out (nullable). Returns sum of squared distances before the move.
  virtual double kmeansStep(const float* x, int64_t n, float* codebook, int C, int g, double* counts);
};

}  // namespace kvq
