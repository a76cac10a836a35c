// Fused greedy RVQ encoding with fp32 CUDA cores: all K stages of a tile of vectors in one
// launch, every distance in the CPU backend's order (kernel_math.h), so codes, residuals
// and energies equal the CPU's bit for bit.
//
// Inputs : x [n, g]; the packed codebooks (codebook_pack.cu).
// Outputs: EncodeOutputs (codes, per-vector energies, final residual, stage inputs).
// Layout : 256 threads, a tile of 128 vectors. Shared: m = -2r and r, both [g][128]; two
//          chunk buffers [g][72] and their norms. Thread (ty, tx) = (t / 16, t % 16)
//          computes vectors 8ty..8ty+7 against entries 4tx..4tx+3 of each 64-entry chunk:
//          per channel two float4 reads of m (one address pair per warp: broadcast) and
//          one float4 of the chunk (16 addresses, two wavefronts) for 32 FMAs.
// Order  : acc starts at |c|^2 and adds fma(m[d], c[d], acc) for d = 0..g-1; each thread
//          keeps its best entry per vector with a strict <, entries in increasing order
//          (lowest index among ties); the 16 thread-bests of a vector are reduced by
//          shuffles with (distance, index) order, which is the CPU's lexicographic argmin.
// Assumes: encodeSharedBytes(Exact, g) fits the device (CudaBackend checks).
#include "cuda_check.h"
#include "encode_common.cuh"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

using detail::kTileShift;
using detail::kTileVectors;

constexpr int kThreads = 256;
constexpr int kRowsPerThread = 8;    // vectors
constexpr int kColsPerThread = 4;    // entries
constexpr int kLanesPerVector = 16;  // threads sharing a vector (tx)

__device__ __forceinline__ void searchChunk(const float* ms, const float* cs, const float* cn, int g, int ty,
                                            int tx, int e0, float (&best)[kRowsPerThread],
                                            int (&bestIndex)[kRowsPerThread]) {
  float acc[kRowsPerThread][kColsPerThread];
  const float4 norm = *reinterpret_cast<const float4*>(cn + 4 * tx);
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    acc[i][0] = norm.x;
    acc[i][1] = norm.y;
    acc[i][2] = norm.z;
    acc[i][3] = norm.w;
  }
#pragma unroll 4
  for (int d = 0; d < g; ++d) {
    const float4 m0 = *reinterpret_cast<const float4*>(ms + (d << kTileShift) + 8 * ty);
    const float4 m1 = *reinterpret_cast<const float4*>(ms + (d << kTileShift) + 8 * ty + 4);
    const float4 c = *reinterpret_cast<const float4*>(cs + d * kChunkStride + 4 * tx);
    const float mv[kRowsPerThread] = {m0.x, m0.y, m0.z, m0.w, m1.x, m1.y, m1.z, m1.w};
    const float cv[kColsPerThread] = {c.x, c.y, c.z, c.w};
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) acc[i][j] = fmaF(mv[i], cv[j], acc[i][j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kColsPerThread; ++j) {
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      if (acc[i][j] < best[i]) {  // strict: this thread's entries arrive in increasing order
        best[i] = acc[i][j];
        bestIndex[i] = e0 + 4 * tx + j;
      }
    }
  }
}

// The stage's winner of each vector: (distance, index) minimum over the 16 lanes of a
// half-warp, which share ty (lanes xor 1..8 stay inside the half).
__device__ __forceinline__ void reduceWinners(float (&best)[kRowsPerThread], int (&bestIndex)[kRowsPerThread],
                                              int ty, int tx, int* chosen) {
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    float d = best[i];
    int idx = bestIndex[i];
#pragma unroll
    for (int offset = kLanesPerVector / 2; offset > 0; offset /= 2) {
      const float od = __shfl_xor_sync(0xffffffffu, d, offset);
      const int oi = __shfl_xor_sync(0xffffffffu, idx, offset);
      if (pairBefore(od, oi, d, idx)) {
        d = od;
        idx = oi;
      }
    }
    if (tx == 0) chosen[kRowsPerThread * ty + i] = idx;
  }
}

__global__ void __launch_bounds__(kThreads)
    exactEncodeKernel(const float* __restrict__ x, int64_t n, detail::BooksView b, EncodeOutputs out) {
  extern __shared__ __align__(16) float smem[];
  const int g = b.g;
  float* ms = smem;                                              // [g][128] m = -2r
  float* rs = ms + g * kTileVectors;                             // [g][128] r
  float* cs = rs + g * kTileVectors;                             // [2][g][72]
  float* cn = cs + 2 * g * kChunkStride;                         // [2][64]
  int* chosen = reinterpret_cast<int*>(cn + 2 * kChunkEntries);  // [128]

  const int t = threadIdx.x;
  const int ty = t / kLanesPerVector;
  const int tx = t % kLanesPerVector;
  const int64_t v0 = static_cast<int64_t>(blockIdx.x) * kTileVectors;
  detail::loadTile(x, n, v0, g, rs, ms);

  for (int k = 0; k < b.K; ++k) {
    const float* stagePacked = b.packed + static_cast<int64_t>(k) * b.chunks * g * kChunkEntries;
    const float* stageNorms = b.norms + static_cast<int64_t>(k) * b.chunks * kChunkEntries;
    __syncthreads();  // rs/ms complete (load or previous stage's update)
    if (out.stageInputs != nullptr) detail::storeTile(rs, n, v0, g, out.stageInputs + k * n * g);

    float best[kRowsPerThread];
    int bestIndex[kRowsPerThread];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      best[i] = kInfF;
      bestIndex[i] = 0;
    }
    detail::issueChunk(stagePacked, stageNorms, 0, g, cs, cn);
    detail::cpAsyncCommit();
    for (int c = 0; c < b.chunks; ++c) {
      const int buf = c & 1;
      if (c + 1 < b.chunks) {
        detail::issueChunk(stagePacked, stageNorms, c + 1, g, cs + (buf ^ 1) * g * kChunkStride,
                           cn + (buf ^ 1) * kChunkEntries);
      }
      detail::cpAsyncCommit();  // possibly empty: keeps one group per iteration
      detail::cpAsyncWait<1>();
      __syncthreads();  // chunk c visible to every thread
      searchChunk(ms, cs + buf * g * kChunkStride, cn + buf * kChunkEntries, g, ty, tx, c * kChunkEntries,
                  best, bestIndex);
      __syncthreads();  // buffer `buf` free for chunk c + 2
    }
    reduceWinners(best, bestIndex, ty, tx, chosen);
    __syncthreads();
    detail::subtractChosen(b.rowMajor + static_cast<int64_t>(k) * b.C * g, chosen, n, v0, g, rs, ms);
    __syncthreads();
    detail::finishStage(rs, chosen, n, v0, g, k, out);
  }
  if (out.residual != nullptr) {
    __syncthreads();
    detail::storeTile(rs, n, v0, g, out.residual);
  }
}

// One thread per (tile, stage): the tile's energies summed in vector order.
__global__ void tileErrorKernel(const double* __restrict__ energies, int64_t n, int K,
                                double* __restrict__ sums) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t tiles = (n + kErrorTile - 1) / kErrorTile;
  if (item >= tiles * K) return;
  const int64_t tile = item / K;
  const int k = static_cast<int>(item % K);
  const double* e = energies + static_cast<int64_t>(k) * n;
  const int64_t end = min(n, (tile + 1) * kErrorTile);
  double s = 0.0;
  for (int64_t v = tile * kErrorTile; v < end; ++v) s = addD(s, e[v]);
  sums[tile * K + k] = s;
}

size_t exactSharedBytes(int g) {
  return sizeof(float) * (2 * static_cast<size_t>(g) * kTileVectors +
                          2 * static_cast<size_t>(g) * kChunkStride + 2 * kChunkEntries) +
         sizeof(int) * kTileVectors;
}

}  // namespace

size_t encodeSharedBytes(EncodePath path, int g) {
  return path == EncodePath::TensorCore ? detail::tensorCoreSharedBytes(g) : exactSharedBytes(g);
}

void setEncodeSharedLimit(size_t bytes) {
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(exactEncodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(bytes)));
  detail::setTensorCoreSharedLimit(bytes);
}

void launchGreedyEncode(EncodePath path, const float* x, int64_t n, const PackedCodebooks& books,
                        const CandidateBound& bound, const EncodeOutputs& out, cudaStream_t stream) {
  if (n <= 0) return;
  const detail::BooksView view = detail::viewOf(books);
  if (path == EncodePath::TensorCore) {
    detail::launchTensorCoreEncode(x, n, view, bound, out, stream);
    return;
  }
  const auto blocks = static_cast<unsigned>((n + kTileVectors - 1) / kTileVectors);
  exactEncodeKernel<<<blocks, kThreads, exactSharedBytes(books.dim), stream>>>(x, n, view, out);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

void launchTileErrorSums(const double* energies, int64_t n, int K, double* tileSums, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t items = (n + kErrorTile - 1) / kErrorTile * K;
  const int threads = 128;
  tileErrorKernel<<<static_cast<unsigned>((items + threads - 1) / threads), threads, 0, stream>>>(
      energies, n, K, tileSums);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvq::gpu
