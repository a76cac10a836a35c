// Device pieces shared by the two greedy encode kernels (greedy_encode.cu: exact fp32;
// greedy_encode_tc.cu: tensor-core candidates + exact re-rank).
//
// Both kernels give a block kTileVectors vectors whose residuals stay in shared memory,
// dimension-major ([g][kTileVectors]) so that consecutive threads touch consecutive
// words (no bank conflicts) and index arithmetic is shifts and masks. Each stage's packed
// codebook streams through two shared buffers, chunk c+1 copied by cp.async while chunk c
// is searched.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernel_math.h"
#include "rvq_kernels.h"

namespace kvq::gpu::detail {

constexpr int kTileVectors = 128;
constexpr int kTileShift = 7;  // log2(kTileVectors)
static_assert(1 << kTileShift == kTileVectors);

// Device pointers of PackedCodebooks, passed to kernels by value.
struct BooksView {
  const float* rowMajor;
  const float* packed;
  const float* packedTf32;
  const float* norms;
  const float* negHalfNorms;
  const float* cMax;
  const int32_t* zeroWinner;
  int K, C, g, chunks;
};

inline BooksView viewOf(const PackedCodebooks& b) {
  return {b.rowMajor.get(),
          b.packed.get(),
          b.packedTf32.get(),
          b.norms.get(),
          b.negHalfNorms.get(),
          b.cMax.get(),
          b.zeroWinner.get(),
          b.depth,
          b.size,
          b.dim,
          b.chunks};
}

// Tensor-core kernel (greedy_encode_tc.cu).
size_t tensorCoreSharedBytes(int g);
void launchTensorCoreEncode(const float* x, int64_t n, const BooksView& books, const CandidateBound& bound,
                            const EncodeOutputs& out, cudaStream_t stream);
void setTensorCoreSharedLimit(size_t bytes);

__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Copies chunk `chunk` of one stage (g rows of 64 floats, contiguous in the packed
// layout) into `dst` (row stride kChunkStride) and its 64 norms into `dstNorms`: one
// 16-byte copy per thread and step, consecutive threads on consecutive addresses.
__device__ __forceinline__ void issueChunk(const float* stagePacked, const float* stageNorms, int chunk,
                                           int g, float* dst, float* dstNorms) {
  const float* src = stagePacked + static_cast<int64_t>(chunk) * g * kChunkEntries;
  const int quads = g * (kChunkEntries / 4);
  for (int i = threadIdx.x; i < quads; i += blockDim.x) {
    const int row = i >> 4;  // 16 quads per row of 64
    const int quad = i & 15;
    cpAsync16(dst + row * kChunkStride + 4 * quad, src + 4 * i);
  }
  if (threadIdx.x < kChunkEntries / 4) {
    cpAsync16(dstNorms + 4 * threadIdx.x, stageNorms + chunk * kChunkEntries + 4 * threadIdx.x);
  }
}

// rs[d][v] = x[v0 + v][d] (0 past n); ms, when given, = -2 rs.
__device__ __forceinline__ void loadTile(const float* __restrict__ x, int64_t n, int64_t v0, int g, float* rs,
                                         float* ms) {
  for (int i = threadIdx.x; i < kTileVectors * g; i += blockDim.x) {
    const int d = i >> kTileShift;
    const int v = i & (kTileVectors - 1);
    const float value = v0 + v < n ? x[(v0 + v) * g + d] : 0.0f;
    rs[i] = value;
    if (ms != nullptr) ms[i] = -2.0f * value;
  }
}

// out[v0 + v][d] = rs[d][v] for the tile's valid vectors. out: [n, g]
__device__ __forceinline__ void storeTile(const float* rs, int64_t n, int64_t v0, int g,
                                          float* __restrict__ out) {
  for (int i = threadIdx.x; i < kTileVectors * g; i += blockDim.x) {
    const int d = i >> kTileShift;
    const int v = i & (kTileVectors - 1);
    if (v0 + v < n) out[(v0 + v) * g + d] = rs[i];
  }
}

// r <- r - C_k[chosen[v]] in fp32 (the CPU's subtraction), and m = -2r when given.
__device__ __forceinline__ void subtractChosen(const float* __restrict__ stageBook, const int* chosen,
                                               int64_t n, int64_t v0, int g, float* rs, float* ms) {
  for (int i = threadIdx.x; i < kTileVectors * g; i += blockDim.x) {
    const int d = i >> kTileShift;
    const int v = i & (kTileVectors - 1);
    if (v0 + v >= n) continue;
    const float r = rs[i] - stageBook[static_cast<int64_t>(chosen[v]) * g + d];
    rs[i] = r;
    if (ms != nullptr) ms[i] = -2.0f * r;
  }
}

// Thread t < kTileVectors: writes vector t's code of stage k and its residual energy
// (double, channel order: the CPU's subtractAndEnergy sum) and returns that energy.
__device__ __forceinline__ double finishStage(const float* rs, const int* chosen, int64_t n, int64_t v0,
                                              int g, int k, const EncodeOutputs& out) {
  const int t = threadIdx.x;
  double e = 0.0;
  if (t >= kTileVectors || v0 + t >= n) return e;
  for (int d = 0; d < g; ++d) {
    const double r = rs[(d << kTileShift) + t];
    e = addD(e, mulD(r, r));  // the product of two floats is exact in double
  }
  out.codes[(v0 + t) * out.codeVectorStride + k * out.codeStageStride] = chosen[t];
  if (out.energies != nullptr) out.energies[static_cast<int64_t>(k) * n + v0 + t] = e;
  return e;
}

}  // namespace kvq::gpu::detail
