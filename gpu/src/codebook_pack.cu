// Prepares the codebooks for the encode kernels, once per upload (rvq_kernels.h):
// row-major -> [K][chunks][g][64] (fp32 and TF32), the CPU-order norms, -norm/2 and the
// per-stage bound cMax of the tensor-core candidate window.
//
// Inputs : books [K, C, g] row-major fp32 (device).
// Outputs: packed / packedTf32 [K, chunks, g, 64]; norms / negHalfNorms [K, chunks*64];
//          cMax [K]. Entries shadowed by an identical lower entry (kernel_math.h) score
//          -inf in the tensor-core search (negHalfNorms): they can never win.
// One thread per (stage, padded entry): it reads its entry's row once and scatters it, so
// for each channel d a warp writes 32 consecutive floats (coalesced).
#include <vector>

#include "cuda_check.h"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

__global__ void packKernel(const float* __restrict__ books, int K, int C, int g, int chunks,
                           float* __restrict__ packed, float* __restrict__ packedTf32,
                           float* __restrict__ norms, float* __restrict__ negHalfNorms,
                           const uint8_t* __restrict__ shadowed, float* __restrict__ cMax) {
  const int padded = chunks * kChunkEntries;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= static_cast<int64_t>(K) * padded) return;
  const int k = static_cast<int>(item / padded);
  const int e = static_cast<int>(item % padded);
  const int chunk = e / kChunkEntries;
  const int lane = e % kChunkEntries;
  float* dst = packed + ((static_cast<int64_t>(k) * chunks + chunk) * g) * kChunkEntries + lane;
  float* dstTf = packedTf32 == nullptr
                     ? nullptr
                     : packedTf32 + ((static_cast<int64_t>(k) * chunks + chunk) * g) * kChunkEntries + lane;
  if (e >= C) {  // padding: a zero entry of norm +inf never wins
    for (int d = 0; d < g; ++d) {
      dst[d * kChunkEntries] = 0.0f;
      if (dstTf != nullptr) dstTf[d * kChunkEntries] = 0.0f;
    }
    norms[item] = kInfF;
    negHalfNorms[item] = -kInfF;
    return;
  }
  const float* c = books + (static_cast<int64_t>(k) * C + e) * g;
  for (int d = 0; d < g; ++d) {
    const float v = c[d];
    dst[d * kChunkEntries] = v;
    if (dstTf != nullptr) dstTf[d * kChunkEntries] = roundTf32(v);
  }
  const float norm = entryNormF(c, g);
  norms[item] = norm;
  const bool hidden = shadowed != nullptr && shadowed[static_cast<int64_t>(k) * C + e] != 0;
  negHalfNorms[item] = hidden ? -kInfF : -0.5f * norm;
  const float length = entryLengthUp(c, g);  // +inf: the stage's candidates cannot be bounded
  // Non-negative floats order as their bit patterns: an integer max is a float max.
  atomicMax(reinterpret_cast<int*>(cMax + k), __float_as_int(length));
}

void ensureSizes(int K, int C, int g, bool withTf32, PackedCodebooks& out) {
  out.depth = K;
  out.size = C;
  out.dim = g;
  out.chunks = (C + kChunkEntries - 1) / kChunkEntries;
  const size_t padded = static_cast<size_t>(K) * out.chunks * kChunkEntries;
  out.rowMajor.resize(static_cast<size_t>(K) * C * g);
  out.packed.resize(padded * g);
  if (withTf32) {
    out.packedTf32.resize(padded * g);
    out.shadowed.resize(static_cast<size_t>(K) * C);
  }
  out.norms.resize(padded);
  out.negHalfNorms.resize(padded);
  out.cMax.resize(static_cast<size_t>(K));
}

// hostBooks: [K, C, g] on the host (for the duplicate scan of the tensor-core search).
void launchPack(const float* hostBooks, int K, int C, int g, bool withTf32, PackedCodebooks& out,
                cudaStream_t stream) {
  if (withTf32) {
    std::vector<uint8_t> shadowed(static_cast<size_t>(K) * C);
    std::vector<int32_t> zeroWinner(static_cast<size_t>(K));
    std::vector<float> norms(static_cast<size_t>(C));
    for (int k = 0; k < K; ++k) {
      const float* stage = hostBooks + static_cast<int64_t>(k) * C * g;
      findShadowedEntries(stage, C, g, shadowed.data() + static_cast<size_t>(k) * C);
      for (int e = 0; e < C; ++e)
        norms[static_cast<size_t>(e)] = entryNormF(stage + static_cast<int64_t>(e) * g, g);
      zeroWinner[static_cast<size_t>(k)] = smallestNormEntry(norms.data(), C);
    }
    out.shadowed.upload(shadowed.data(), shadowed.size());
    out.zeroWinner.upload(zeroWinner.data(), zeroWinner.size());
  }
  KVQ_CUDA_CHECK(cudaMemsetAsync(out.cMax.get(), 0, sizeof(float) * K, stream));
  const int64_t items = static_cast<int64_t>(K) * out.chunks * kChunkEntries;
  const int threads = 256;
  const auto blocks = static_cast<unsigned>((items + threads - 1) / threads);
  packKernel<<<blocks, threads, 0, stream>>>(
      out.rowMajor.get(), K, C, g, out.chunks, out.packed.get(), withTf32 ? out.packedTf32.get() : nullptr,
      out.norms.get(), out.negHalfNorms.get(), withTf32 ? out.shadowed.get() : nullptr, out.cMax.get());
  KVQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void packCodebooks(const float* hostBooks, int K, int C, int g, bool withTf32, PackedCodebooks& out,
                   cudaStream_t stream) {
  ensureSizes(K, C, g, withTf32, out);
  // Pageable copy on the legacy stream, which the backend's blocking stream orders after.
  KVQ_CUDA_CHECK(
      cudaMemcpy(out.rowMajor.get(), hostBooks, sizeof(float) * K * C * g, cudaMemcpyHostToDevice));
  launchPack(hostBooks, K, C, g, withTf32, out, stream);
}

void packCodebooksFromDevice(const float* deviceBooks, int K, int C, int g, bool withTf32,
                             PackedCodebooks& out, cudaStream_t stream) {
  ensureSizes(K, C, g, withTf32, out);
  std::vector<float> host(static_cast<size_t>(K) * C * g);
  KVQ_CUDA_CHECK(cudaStreamSynchronize(stream));
  KVQ_CUDA_CHECK(cudaMemcpy(host.data(), deviceBooks, sizeof(float) * host.size(), cudaMemcpyDeviceToHost));
  packCodebooks(host.data(), K, C, g, withTf32, out, stream);
}

}  // namespace kvq::gpu
