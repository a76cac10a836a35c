// Deterministic per-entry statistics and the EMA codebook update on the device, bit-equal
// to the CPU backend.
//
// Statistics: a stable radix sort of (code, vector index) pairs groups each entry's
// vectors in index order; one warp per entry then adds them in double, lanes over
// channels, continuing the running sums of earlier chunks. The result does not depend on
// scheduling, unlike float atomics, and equals the CPU's sequential sums.
// EMA update (docs/metrics.md §4): N_i <- l N_i + (1-l) n_i, m_i <- l m_i + (1-l) s_i,
// C[i] = m_i / ((N_i + eps) / (sum N + C eps) * sum N), sum N added in entry order, each
// operation rounded once (kernel_math.h: no fused multiply-add).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "cuda_check.h"
#include "entry_stats.h"
#include "kernel_math.h"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

__global__ void iotaKernel(int32_t* out, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<int32_t>(i);
}

__global__ void setValueKernel(int32_t* out, int32_t value) {
  *out = value;
}

__global__ void histogramKernel(const int32_t* codes, int64_t n, int C, int32_t* histogram) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) {
    const int32_t c = codes[i];
    if (c >= 0 && c < C) atomicAdd(histogram + c, 1);  // integer: order does not matter
  }
}

// One warp per entry e, lanes over channels: counts[e] and sums[e, :] continue from their
// current values, adding this batch's vectors of e one at a time in vector order (the
// stable sort keeps that order), exactly as the CPU's sequential accumulate does.
__global__ void segmentSumKernel(const float* __restrict__ x, int g, const int32_t* __restrict__ sortedOrder,
                                 const int32_t* __restrict__ offsets, int C, double* __restrict__ counts,
                                 double* __restrict__ sums) {
  const int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= C) return;
  const int begin = offsets[warp];
  const int end = offsets[warp + 1];
  if (lane == 0) {
    double count = counts[warp];
    for (int j = begin; j < end; ++j) count = addD(count, 1.0);
    counts[warp] = count;
  }
  for (int d = lane; d < g; d += 32) {
    double s = sums[static_cast<int64_t>(warp) * g + d];
    for (int j = begin; j < end; ++j) s = addD(s, x[static_cast<int64_t>(sortedOrder[j]) * g + d]);
    sums[static_cast<int64_t>(warp) * g + d] = s;
  }
}

// N_i <- decay N_i + (1 - decay) n_i and m_i likewise, each product and sum rounded once.
__global__ void emaStatsKernel(double* emaCount, double* emaSum, const double* batchCount,
                               const double* batchSum, int C, int g, double decay, double oneMinusDecay) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < C) emaCount[i] = emaBlend(decay, oneMinusDecay, emaCount[i], batchCount[i]);
  if (i < static_cast<int64_t>(C) * g) emaSum[i] = emaBlend(decay, oneMinusDecay, emaSum[i], batchSum[i]);
}

// One thread: total = sum of emaCount in entry order (the CPU's sequential sum).
__global__ void totalKernel(const double* emaCount, int C, double* total) {
  double s = 0.0;
  for (int i = 0; i < C; ++i) s = addD(s, emaCount[i]);
  *total = s;
}

// C[i] = m_i / smoothed N_i, unless the total count is not positive (the CPU returns early).
__global__ void emaCodebookKernel(const double* emaCount, const double* emaSum, float* codebook, int C, int g,
                                  double eps, const double* totalPtr) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(C) * g) return;
  const double total = *totalPtr;
  if (!(total > 0.0)) return;
  const double smoothed = smoothedCount(emaCount[i / g], eps, total, C);
  codebook[i] = __double2float_rn(divD(emaSum[i], smoothed));
}

unsigned blocksFor(int64_t n, int threads) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace

void computeEntryStats(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                       double* sums, EntryStatsWorkspace& ws, cudaStream_t stream) {
  if (n == 0) return;
  if (n > INT32_MAX)
    throw Error(ErrorKind::Internal, "", "computeEntryStats", "batch larger than 2^31 vectors");
  const int items = static_cast<int>(n);
  ws.order.resize(n);
  ws.sortedCodes.resize(n);
  ws.sortedOrder.resize(n);
  ws.histogram.resize(C);
  ws.offsets.resize(static_cast<size_t>(C) + 1);
  iotaKernel<<<blocksFor(n, 256), 256, 0, stream>>>(ws.order.get(), n);
  KVQ_CUDA_CHECK(cudaGetLastError());

  int endBit = 1;
  while (endBit < 31 && (1 << endBit) < C) ++endBit;
  size_t sortBytes = 0;
  KVQ_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sortBytes, codes, ws.sortedCodes.get(),
                                                 ws.order.get(), ws.sortedOrder.get(), items, 0, endBit,
                                                 stream));
  size_t scanBytes = 0;
  KVQ_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(nullptr, scanBytes, ws.histogram.get(), ws.offsets.get(), C + 1, stream));
  ws.cubTemp.resize(sortBytes > scanBytes ? sortBytes : scanBytes);
  KVQ_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(ws.cubTemp.get(), sortBytes, codes, ws.sortedCodes.get(),
                                                 ws.order.get(), ws.sortedOrder.get(), items, 0, endBit,
                                                 stream));

  KVQ_CUDA_CHECK(cudaMemsetAsync(ws.histogram.get(), 0, sizeof(int32_t) * C, stream));
  histogramKernel<<<blocksFor(n, 256), 256, 0, stream>>>(codes, n, C, ws.histogram.get());
  KVQ_CUDA_CHECK(cudaGetLastError());
  // offsets[0..C) = exclusive prefix sum of the histogram; offsets[C] = n.
  KVQ_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(ws.cubTemp.get(), scanBytes, ws.histogram.get(),
                                               ws.offsets.get(), C, stream));
  setValueKernel<<<1, 1, 0, stream>>>(ws.offsets.get() + C, items);
  KVQ_CUDA_CHECK(cudaGetLastError());

  const int threads = 256;
  segmentSumKernel<<<blocksFor(static_cast<int64_t>(C) * 32, threads), threads, 0, stream>>>(
      x, g, ws.sortedOrder.get(), ws.offsets.get(), C, counts, sums);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

void launchEmaUpdate(double* emaCount, double* emaSum, float* codebook, const double* batchCount,
                     const double* batchSum, int C, int g, double decay, double eps, double* scratchTotal,
                     cudaStream_t stream) {
  const int64_t cells = static_cast<int64_t>(C) * g;
  emaStatsKernel<<<blocksFor(cells, 256), 256, 0, stream>>>(emaCount, emaSum, batchCount, batchSum, C, g,
                                                            decay, 1.0 - decay);
  KVQ_CUDA_CHECK(cudaGetLastError());
  totalKernel<<<1, 1, 0, stream>>>(emaCount, C, scratchTotal);
  KVQ_CUDA_CHECK(cudaGetLastError());
  emaCodebookKernel<<<blocksFor(cells, 256), 256, 0, stream>>>(emaCount, emaSum, codebook, C, g, eps,
                                                               scratchTotal);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace kvq::gpu
