// GPU benchmark of the CUDA backend on the reference shape of ANCHORS.md:
// N = 524 288 group vectors of g = 32, C = 2048 entries, K = 8 stages.
//
// Reports, on the device it runs on, in one process:
//   - fused greedy encode of all K stages (device-resident data, kernel time);
//   - one EMA training step (assignment + deterministic statistics + update, one stage
//     of N vectors, device-resident) and, for comparison with the authors' "training
//     step" (encode + statistics), encode + statistics of all K stages;
//   - cuBLAS SGEMM and TF32 GEMM doing the same distance arithmetic ([N x g] x [g x C]
//     per stage, no argmin) as floors, and the ratio of the encode to SGEMM;
//   - end to end through kvq::Backend (host arrays in and out).
// Usage: bench_gpu_rvq [N] [C] [K] [g]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "device_buffer.h"
#include "entry_stats.h"
#include "kvq/gpu/cuda_backend.h"
#include "rvq_kernels.h"

using kvq::gpu::DeviceBuffer;

namespace {

template <typename F>
double timeMs(F&& body, int repeats) {
  cudaEvent_t start, stop;
  KVQ_CUDA_CHECK(cudaEventCreate(&start));
  KVQ_CUDA_CHECK(cudaEventCreate(&stop));
  body();  // warm-up
  KVQ_CUDA_CHECK(cudaDeviceSynchronize());
  KVQ_CUDA_CHECK(cudaEventRecord(start));
  for (int r = 0; r < repeats; ++r) body();
  KVQ_CUDA_CHECK(cudaEventRecord(stop));
  KVQ_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  KVQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / repeats;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 524288;
  const int C = argc > 2 ? std::atoi(argv[2]) : 2048;
  const int K = argc > 3 ? std::atoi(argv[3]) : 8;
  const int g = argc > 4 ? std::atoi(argv[4]) : 32;
  try {
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d, %d SMs)\nshape: N=%lld g=%d C=%d K=%d\n", prop.name, prop.major,
                prop.minor, prop.multiProcessorCount, static_cast<long long>(n), g, C, K);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(n) * g), books(static_cast<size_t>(K) * C * g);
    for (float& v : x) v = normal(rng);
    for (float& v : books) v = 0.5f * normal(rng);

    DeviceBuffer<float> dx, dbooks, dnorms;
    dx.upload(x.data(), x.size());
    dbooks.upload(books.data(), books.size());
    dnorms.resize(static_cast<size_t>(K) * C);
    kvq::gpu::launchEntryNorms(dbooks.get(), static_cast<int64_t>(K) * C, g, dnorms.get(), nullptr);
    DeviceBuffer<int32_t> dcodes(static_cast<size_t>(n) * K);
    DeviceBuffer<double> dblock(static_cast<size_t>(kvq::gpu::greedyEncodeBlocks(n)) * K);
    const double flops = 2.0 * n * C * g * K;

    const double encodeMs = timeMs(
        [&] {
          kvq::gpu::launchGreedyEncode(dx.get(), n, g, dbooks.get(), dnorms.get(), K, C, dcodes.get(),
                                       dblock.get(), nullptr, nullptr);
        },
        5);
    std::printf("fused greedy encode, %d stages      %9.2f ms  %6.1f TFLOP/s\n", K, encodeMs,
                flops / encodeMs / 1e9);

    // One EMA step on one stage: assign + statistics + update.
    DeviceBuffer<double> counts(C), sums(static_cast<size_t>(C) * g), emaCount(C),
        emaSum(static_cast<size_t>(C) * g), total(1);
    KVQ_CUDA_CHECK(cudaMemset(emaCount.get(), 0, sizeof(double) * C));
    KVQ_CUDA_CHECK(cudaMemset(emaSum.get(), 0, sizeof(double) * C * g));
    kvq::gpu::EntryStatsWorkspace ws;
    DeviceBuffer<float> book0(static_cast<size_t>(C) * g);
    KVQ_CUDA_CHECK(cudaMemcpy(book0.get(), dbooks.get(), sizeof(float) * C * g, cudaMemcpyDeviceToDevice));
    const double emaMs = timeMs(
        [&] {
          KVQ_CUDA_CHECK(cudaMemsetAsync(counts.get(), 0, sizeof(double) * C));
          KVQ_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double) * C * g));
          kvq::gpu::launchGreedyEncode(dx.get(), n, g, book0.get(), dnorms.get(), 1, C, dcodes.get(),
                                       dblock.get(), nullptr, nullptr);
          kvq::gpu::computeEntryStats(dx.get(), n, g, dcodes.get(), C, counts.get(), sums.get(), ws, nullptr);
          kvq::gpu::launchEmaUpdate(emaCount.get(), emaSum.get(), book0.get(), counts.get(), sums.get(), C, g,
                                    0.99, 1e-5, total.get(), nullptr);
        },
        5);
    std::printf("EMA step, one stage                 %9.2f ms\n", emaMs);

    // Encode + statistics of every stage (what the authors' fused training step does).
    DeviceBuffer<int32_t> stageCodes(static_cast<size_t>(n));
    const double trainStepMs = timeMs(
        [&] {
          kvq::gpu::launchGreedyEncode(dx.get(), n, g, dbooks.get(), dnorms.get(), K, C, dcodes.get(),
                                       dblock.get(), nullptr, nullptr);
          KVQ_CUDA_CHECK(cudaMemsetAsync(counts.get(), 0, sizeof(double) * C));
          KVQ_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double) * C * g));
          kvq::gpu::computeEntryStats(dx.get(), n, g, dcodes.get(), C, counts.get(), sums.get(), ws, nullptr);
        },
        5);
    std::printf("encode %d stages + statistics        %9.2f ms\n", K, trainStepMs);

    // cuBLAS floors: the same dot products as GEMMs, no argmin.
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
    DeviceBuffer<float> dots(static_cast<size_t>(n) * C);
    const float one = 1.0f, zero = 0.0f;
    double gemmMs[2] = {0, 0};
    const cublasMath_t modes[2] = {CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH};
    for (int m = 0; m < 2; ++m) {
      cublasSetMathMode(handle, modes[m]);
      gemmMs[m] = timeMs(
          [&] {
            for (int k = 0; k < K; ++k) {
              // dots[C x n] (column-major) = books_k[g x C]^T * x[g x n]
              cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, C, static_cast<int>(n), g, &one,
                          dbooks.get() + static_cast<size_t>(k) * C * g, g, dx.get(), g, &zero, dots.get(),
                          C);
            }
          },
          3);
    }
    cublasDestroy(handle);
    std::printf("cuBLAS SGEMM, same arithmetic       %9.2f ms  %6.1f TFLOP/s\n", gemmMs[0],
                flops / gemmMs[0] / 1e9);
    std::printf("cuBLAS TF32 GEMM, same arithmetic   %9.2f ms  %6.1f TFLOP/s\n", gemmMs[1],
                flops / gemmMs[1] / 1e9);
    std::printf("encode / SGEMM ratio                %9.2f\n", encodeMs / gemmMs[0]);

    // End to end through the Backend interface (host arrays in and out).
    auto backend = kvq::gpu::makeCudaBackend(0);
    kvq::Codebooks cb(K, C, g);
    cb.data = books;
    std::vector<int32_t> codes(static_cast<size_t>(n) * K);
    std::vector<double> depthError(K, 0.0);
    backend->encodeGreedy(x.data(), n, cb, codes.data(), depthError.data(), nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    backend->encodeGreedy(x.data(), n, cb, codes.data(), depthError.data(), nullptr);
    const double e2eMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("Backend::encodeGreedy, host arrays  %9.2f ms\n", e2eMs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_rvq: %s\n", e.what());
    return 1;
  }
  return 0;
}
