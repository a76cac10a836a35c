// Host-side launchers of the RVQ kernels. All pointers are device pointers;
// every launcher runs on `stream` and returns without synchronising.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace kvq::gpu {

// Squared norms of codebook entries. books: [rows, g]; norms: [rows] out.
void launchEntryNorms(const float* books, int64_t rows, int g, float* norms, cudaStream_t stream);

// Fused greedy residual encoding through K stages in one launch: each block keeps a
// tile of residuals in shared memory and streams each stage's codebook through it.
//   x: [n, g]; books: [K, C, g]; norms: [K, C]
//   codes: [n, K] out (int32)
//   blockError: [gridBlocks(n), K] out; per block, the sum over its vectors of
//       ||r_k||^2 after k+1 stages, summed in a fixed order (deterministic)
//   residual: [n, g] out (nullable)
// Distances are ||c||^2 - 2<r, c> in fp32; ties keep the lowest index.
void launchGreedyEncode(const float* x, int64_t n, int g, const float* books, const float* norms, int K,
                        int C, int32_t* codes, double* blockError, float* residual, cudaStream_t stream);
int64_t greedyEncodeBlocks(int64_t n);

// Deterministic per-entry statistics: counts[C] and sums[C, g] (double) of the
// vectors assigned to each entry, summed in vector order.
//   x: [n, g]; codes: [n]; scratch is managed by the caller through EntryStatsWorkspace.
struct EntryStatsWorkspace;
void computeEntryStats(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                       double* sums, EntryStatsWorkspace& workspace, cudaStream_t stream);

// EMA update of one stage from batch statistics (docs/metrics.md §4), in place:
//   emaCount: [C], emaSum: [C, g], codebook: [C, g] (fp32 out), batchCount: [C], batchSum: [C, g]
void launchEmaUpdate(double* emaCount, double* emaSum, float* codebook, const double* batchCount,
                     const double* batchSum, int C, int g, double decay, double eps, double* scratchTotal,
                     cudaStream_t stream);

}  // namespace kvq::gpu
