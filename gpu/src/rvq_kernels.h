// Host-side launchers of the RVQ kernels. All pointers are device pointers; every
// launcher runs on `stream` and returns without synchronising.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "device_buffer.h"
#include "kernel_math.h"

namespace kvq::gpu {

// The codebooks of one quantizer as the encode kernels read them (kernel_math.h), built
// once per upload by packCodebooks.
struct PackedCodebooks {
  int depth = 0;                     // K
  int size = 0;                      // C
  int dim = 0;                       // g
  int chunks = 0;                    // ceil(C / 64)
  DeviceBuffer<float> rowMajor;      // [K, C, g]: residual updates and candidate re-ranking
  DeviceBuffer<float> packed;        // [K, chunks, g, 64] fp32, zero padded
  DeviceBuffer<float> packedTf32;    // the same rounded to TF32 (tensor-core kernel only)
  DeviceBuffer<float> norms;         // [K, chunks*64] |c|^2 in the CPU's order; +inf padding
  DeviceBuffer<float> negHalfNorms;  // [K, chunks*64] -|c|^2/2; -inf for padding and for entries
                                     // shadowed by an identical lower one (tensor-core search only)
  DeviceBuffer<uint8_t> shadowed;    // [K, C] findShadowedEntries, uploaded for the pack kernel
  DeviceBuffer<float> cMax;          // [K] max |c| of the stage, rounded up; +inf if not finite
  DeviceBuffer<int32_t> zeroWinner;  // [K] smallestNormEntry: the winner for a zero residual
};

// Uploads books ([K, C, g] host, row-major) and prepares every layout above. withTf32:
// also the TF32 copy. Synchronous with respect to the host array.
void packCodebooks(const float* hostBooks, int K, int C, int g, bool withTf32, PackedCodebooks& out,
                   cudaStream_t stream);
// The same from a device array (the benchmark): copied to the host for the duplicate scan.
void packCodebooksFromDevice(const float* deviceBooks, int K, int C, int g, bool withTf32,
                             PackedCodebooks& out, cudaStream_t stream);

// Where the encode kernels write. codes[v * codeVectorStride + k * codeStageStride]:
// (K, 1) gives [n, K], (1, n) gives [K, n].
struct EncodeOutputs {
  int32_t* codes = nullptr;
  int64_t codeVectorStride = 1;
  int64_t codeStageStride = 1;
  double* energies = nullptr;               // [K, n] |r_k|^2 after stage k, in double (nullable)
  float* residual = nullptr;                // [n, g] the residual after all K stages (nullable)
  float* stageInputs = nullptr;             // [K, n, g] the residual entering each stage (nullable)
  unsigned long long* fallbacks = nullptr;  // [1] += (vector, stage) decisions the tensor-core
                                            // kernel left to its exact search (nullable)
};

// Fused greedy encoding of x: [n, g] through all K stages in one launch.
// Exact: fp32 CUDA cores, the CPU's distance order (kernel_math.h); any g whose shared
// memory fits (encodeSharedBytes). Tensor cores: TF32 candidates re-ranked exactly, the
// same codes as the exact kernel; g <= kMaxTensorCoreDim only.
constexpr int kMaxTensorCoreDim = 32;
enum class EncodePath { Exact, TensorCore };
size_t encodeSharedBytes(EncodePath path, int g);
void launchGreedyEncode(EncodePath path, const float* x, int64_t n, const PackedCodebooks& books,
                        const CandidateBound& bound, const EncodeOutputs& out, cudaStream_t stream);
// Raises every encode kernel's dynamic shared-memory limit to `bytes` on the current
// device. Not thread-safe by itself: CudaBackend calls it once per device under a lock.
void setEncodeSharedLimit(size_t bytes);

// Depth-error sums per tile of kErrorTile vectors, in vector order (the CPU's tiles).
//   energies: [K, n]; tileSums: [ceil(n / kErrorTile), K] out
void launchTileErrorSums(const double* energies, int64_t n, int K, double* tileSums, cudaStream_t stream);

// Runs one m16n8k8 TF32 MMA of known operands and compares it with the host's product:
// proves the fragment layout the tensor-core kernel assumes. Returns the number of wrong
// elements (0 when right). Synchronises.
int tensorCoreLayoutErrors();

// Per-entry statistics, continued: counts[e] and sums[e, :] (double) gain the vectors of
// this batch assigned to e, one at a time in vector order, so that calls over consecutive
// chunks sum exactly what one sequential pass (the CPU's) sums.
//   x: [n, g]; codes: [n], every code in [0, C) (the caller checks)
struct EntryStatsWorkspace;
void computeEntryStats(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                       double* sums, EntryStatsWorkspace& workspace, cudaStream_t stream);

// EMA update of one stage from batch statistics (docs/metrics.md §4), in place, with the
// CPU's operations (kernel_math.h), so bit-equal to Backend::emaStep:
//   emaCount: [C], emaSum: [C, g], codebook: [C, g] (fp32 out, unchanged when the total
//   count is not positive), batchCount: [C], batchSum: [C, g]; scratchTotal: [1]
void launchEmaUpdate(double* emaCount, double* emaSum, float* codebook, const double* batchCount,
                     const double* batchSum, int C, int g, double decay, double eps, double* scratchTotal,
                     cudaStream_t stream);

}  // namespace kvq::gpu
