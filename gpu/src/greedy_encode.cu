// Fused greedy RVQ encoding: all K stages of a tile of vectors in one launch.
//
// Inputs : x [n, g], books [K, C, g], norms [K, C] (||c||^2), all fp32 in device memory.
// Outputs: codes [n, K] int32; blockError [blocks, K] double; residual [n, g] (nullable).
// Layout : a block owns kTileVectors vectors. Their residuals live in shared memory,
//          transposed ([g][kTileVectors]) so a thread reads 4 consecutive vectors as a
//          float4. Each stage's codebook streams through shared memory in chunks of
//          kChunkEntries entries, also transposed. Thread (ty, tx) computes a 4x4 tile of
//          dot products: vectors 4*ty..4*ty+3 against entries 4*tx..4*tx+3 of the chunk.
// Exactness: fp32 FMA dot products; distance = ||c||^2 - 2<r, c> (||r||^2 does not
//          change the argmin); ties keep the lowest index, as on the CPU.
// Assumes: g >= 1; shared memory (2*64*g + 64 + 64*16*2) * 4 bytes fits the device
//          (g <= 256 on sm_80/sm_90 with the opt-in limit).
#include <cfloat>

#include "cuda_check.h"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

constexpr int kTileVectors = 64;
constexpr int kChunkEntries = 64;
constexpr int kThreads = 256;
constexpr int kLanesPerVector = kChunkEntries / 4;  // 16 threads share a vector row

size_t sharedBytes(int g) {
  return sizeof(float) * (static_cast<size_t>(g) * (kTileVectors + kChunkEntries) + kChunkEntries +
                          kTileVectors * kLanesPerVector) +
         sizeof(int) * (kTileVectors * kLanesPerVector + kTileVectors) + sizeof(double) * kTileVectors;
}

__global__ void __launch_bounds__(kThreads)
    greedyEncodeKernel(const float* __restrict__ x, int64_t n, int g, const float* __restrict__ books,
                       const float* __restrict__ norms, int K, int C, int32_t* __restrict__ codes,
                       double* __restrict__ blockError, float* __restrict__ residualOut) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  float* rs = reinterpret_cast<float*>(smemRaw);  // [g][kTileVectors]
  float* cs = rs + g * kTileVectors;              // [g][kChunkEntries]
  float* cn = cs + g * kChunkEntries;             // [kChunkEntries]
  float* partD = cn + kChunkEntries;              // [kTileVectors][kLanesPerVector]
  int* partI = reinterpret_cast<int*>(partD + kTileVectors * kLanesPerVector);
  int* chosen = partI + kTileVectors * kLanesPerVector;               // [kTileVectors]
  double* energy = reinterpret_cast<double*>(chosen + kTileVectors);  // [kTileVectors]

  const int t = threadIdx.x;
  const int ty = t / kLanesPerVector;  // 0..15: vectors 4*ty..4*ty+3
  const int tx = t % kLanesPerVector;  // 0..15: entries 4*tx..4*tx+3
  const int64_t v0 = static_cast<int64_t>(blockIdx.x) * kTileVectors;

  for (int i = t; i < kTileVectors * g; i += kThreads) {
    const int v = i / g;
    const int d = i % g;
    rs[d * kTileVectors + v] = (v0 + v < n) ? x[(v0 + v) * g + d] : 0.0f;
  }

  for (int k = 0; k < K; ++k) {
    const float* book = books + static_cast<int64_t>(k) * C * g;
    const float* bookNorms = norms + static_cast<int64_t>(k) * C;
    float best[4] = {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX};
    int bestIndex[4] = {0, 0, 0, 0};

    for (int e0 = 0; e0 < C; e0 += kChunkEntries) {
      __syncthreads();  // previous chunk (or residual update) fully consumed
      for (int i = t; i < kChunkEntries * g; i += kThreads) {
        const int e = i / g;
        const int d = i % g;
        cs[d * kChunkEntries + e] = (e0 + e < C) ? book[static_cast<int64_t>(e0 + e) * g + d] : 0.0f;
      }
      if (t < kChunkEntries) cn[t] = (e0 + t < C) ? bookNorms[e0 + t] : FLT_MAX;
      __syncthreads();

      float acc[4][4] = {};
      for (int d = 0; d < g; ++d) {
        const float4 r = *reinterpret_cast<const float4*>(rs + d * kTileVectors + 4 * ty);
        const float4 c = *reinterpret_cast<const float4*>(cs + d * kChunkEntries + 4 * tx);
        const float rv[4] = {r.x, r.y, r.z, r.w};
        const float cv[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(rv[i], cv[j], acc[i][j]);
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int e = e0 + 4 * tx + j;
        if (e >= C) break;
        const float norm = cn[4 * tx + j];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float dist = fmaf(-2.0f, acc[i][j], norm);
          if (dist < best[i]) {  // strict: entries arrive in increasing order per thread
            best[i] = dist;
            bestIndex[i] = e;
          }
        }
      }
    }

    // Reduce the 16 partial winners of each vector; ties -> lowest index.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      partD[(4 * ty + i) * kLanesPerVector + tx] = best[i];
      partI[(4 * ty + i) * kLanesPerVector + tx] = bestIndex[i];
    }
    __syncthreads();
    if (t < kTileVectors) {
      float bd = partD[t * kLanesPerVector];
      int bi = partI[t * kLanesPerVector];
      for (int l = 1; l < kLanesPerVector; ++l) {
        const float d = partD[t * kLanesPerVector + l];
        const int idx = partI[t * kLanesPerVector + l];
        if (d < bd || (d == bd && idx < bi)) {
          bd = d;
          bi = idx;
        }
      }
      chosen[t] = bi;
      if (v0 + t < n) codes[(v0 + t) * K + k] = bi;
    }
    __syncthreads();

    // r <- r - C_k[i_k]
    for (int i = t; i < kTileVectors * g; i += kThreads) {
      const int v = i / g;
      const int d = i % g;
      rs[d * kTileVectors + v] -= book[static_cast<int64_t>(chosen[v]) * g + d];
    }
    __syncthreads();

    // Residual energy after k+1 stages: per vector in channel order, then a fixed tree.
    if (t < kTileVectors) {
      double s = 0.0;
      if (v0 + t < n) {
        for (int d = 0; d < g; ++d) {
          const double r = rs[d * kTileVectors + t];
          s += r * r;
        }
      }
      energy[t] = s;
    }
    __syncthreads();
    for (int stride = kTileVectors / 2; stride > 0; stride /= 2) {
      if (t < stride) energy[t] += energy[t + stride];
      __syncthreads();
    }
    if (t == 0) blockError[static_cast<int64_t>(blockIdx.x) * K + k] = energy[0];
  }

  if (residualOut != nullptr) {
    __syncthreads();
    for (int i = t; i < kTileVectors * g; i += kThreads) {
      const int v = i / g;
      const int d = i % g;
      if (v0 + v < n) residualOut[(v0 + v) * g + d] = rs[d * kTileVectors + v];
    }
  }
}

__global__ void entryNormsKernel(const float* __restrict__ books, int64_t rows, int g,
                                 float* __restrict__ norms) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  float s = 0.0f;
  for (int d = 0; d < g; ++d) {
    const float c = books[row * g + d];
    s = fmaf(c, c, s);
  }
  norms[row] = s;
}

}  // namespace

int64_t greedyEncodeBlocks(int64_t n) {
  return (n + kTileVectors - 1) / kTileVectors;
}

void launchEntryNorms(const float* books, int64_t rows, int g, float* norms, cudaStream_t stream) {
  if (rows == 0) return;
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((rows + threads - 1) / threads);
  entryNormsKernel<<<blocks, threads, 0, stream>>>(books, rows, g, norms);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

void launchGreedyEncode(const float* x, int64_t n, int g, const float* books, const float* norms, int K,
                        int C, int32_t* codes, double* blockError, float* residual, cudaStream_t stream) {
  if (n == 0) return;
  const size_t smem = sharedBytes(g);
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(greedyEncodeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
  const auto blocks = static_cast<unsigned>(greedyEncodeBlocks(n));
  greedyEncodeKernel<<<blocks, kThreads, smem, stream>>>(x, n, g, books, norms, K, C, codes, blockError,
                                                         residual);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvq::gpu
