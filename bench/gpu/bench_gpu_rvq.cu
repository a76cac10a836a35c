// GPU benchmark of the CUDA backend on the reference shape of ANCHORS.md:
// N = 524 288 group vectors of g = 32, C = 2048 entries, K = 8 stages, the data of the
// authors' benchmark (x ~ N(0, 1), entries ~ N(0, 0.5^2); bench_authors_kernel.py).
//
// Times on the device it runs on, in one process, device-resident data (CUDA events,
// median of 10 runs after a warm-up):
//   - encode: the fused greedy encode of all K stages, codes out; tensor-core candidates
//     (default) and --exact; with the final residual out as well (the authors' encode
//     writes the reconstruction);
//   - EMA training step, as the authors' fused training step does it: for each stage, that
//     stage's codes and the residuals entering it go into the per-entry statistics, then
//     every stage's codebook gets its EMA update (deterministic, bit-equal to the CPU);
//   - the share of (vector, stage) decisions the tensor-core kernel left to its exact search;
//   - cuBLAS SGEMM and TF32 GEMM doing the same dot products (no argmin), as floors;
//   - Backend::encodeGreedy with host arrays (uploads and downloads included).
// Prints a table, then one line "BENCH_JSON {...}" for scripts/gpu_check.sh.
// Usage: bench_gpu_rvq [N] [C] [K] [g]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
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
using kvq::gpu::EncodePath;

namespace {

constexpr int kRuns = 10;

// Median over kRuns of one call of `body` (after one warm-up call), in ms.
template <typename F>
double medianMs(F&& body) {
  cudaEvent_t start, stop;
  KVQ_CUDA_CHECK(cudaEventCreate(&start));
  KVQ_CUDA_CHECK(cudaEventCreate(&stop));
  body();
  KVQ_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> times;
  for (int r = 0; r < kRuns; ++r) {
    KVQ_CUDA_CHECK(cudaEventRecord(start));
    body();
    KVQ_CUDA_CHECK(cudaEventRecord(stop));
    KVQ_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    KVQ_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct Shape {
  int64_t n;
  int C, K, g;
  double flops() const { return 2.0 * static_cast<double>(n) * C * g * K; }
};

struct DeviceData {
  DeviceBuffer<float> x, books;
  kvq::gpu::PackedCodebooks packed;
  DeviceBuffer<int32_t> codes;
  DeviceBuffer<float> residual, stageInputs;
  DeviceBuffer<unsigned long long> fallbacks;
};

double encodeMs(const Shape& s, DeviceData& d, EncodePath path, bool withResidual) {
  kvq::gpu::EncodeOutputs out;
  out.codes = d.codes.get();
  out.codeVectorStride = s.K;
  out.codeStageStride = 1;
  out.residual = withResidual ? d.residual.get() : nullptr;
  const kvq::gpu::CandidateBound bound = kvq::gpu::candidateBound(s.g);
  return medianMs([&] { kvq::gpu::launchGreedyEncode(path, d.x.get(), s.n, d.packed, bound, out, nullptr); });
}

// Share of decisions the tensor-core kernel sent to its exact search, on this data.
double fallbackShare(const Shape& s, DeviceData& d) {
  kvq::gpu::EncodeOutputs out;
  out.codes = d.codes.get();
  out.codeVectorStride = s.K;
  d.fallbacks.resize(1);
  KVQ_CUDA_CHECK(cudaMemset(d.fallbacks.get(), 0, sizeof(unsigned long long)));
  out.fallbacks = d.fallbacks.get();
  kvq::gpu::launchGreedyEncode(EncodePath::TensorCore, d.x.get(), s.n, d.packed,
                               kvq::gpu::candidateBound(s.g), out, nullptr);
  unsigned long long count = 0;
  d.fallbacks.download(&count, 1);
  return static_cast<double>(count) / (static_cast<double>(s.n) * s.K);
}

// Encode with each stage's input residuals and stage-major codes, then per stage the
// deterministic statistics of that stage's residuals and codes and the EMA update.
double trainStepMs(const Shape& s, DeviceData& d, EncodePath path) {
  const size_t cg = static_cast<size_t>(s.C) * s.g;
  DeviceBuffer<double> counts(static_cast<size_t>(s.C)), sums(cg), emaCount(static_cast<size_t>(s.K) * s.C),
      emaSum(s.K * cg), total(1);
  DeviceBuffer<float> books(s.K * cg);
  KVQ_CUDA_CHECK(cudaMemset(emaCount.get(), 0, sizeof(double) * s.K * s.C));
  KVQ_CUDA_CHECK(cudaMemset(emaSum.get(), 0, sizeof(double) * s.K * cg));
  KVQ_CUDA_CHECK(cudaMemcpy(books.get(), d.books.get(), sizeof(float) * s.K * cg, cudaMemcpyDeviceToDevice));
  kvq::gpu::EntryStatsWorkspace ws;
  kvq::gpu::EncodeOutputs out;
  out.codes = d.codes.get();
  out.codeVectorStride = 1;
  out.codeStageStride = s.n;
  out.stageInputs = d.stageInputs.get();
  const kvq::gpu::CandidateBound bound = kvq::gpu::candidateBound(s.g);
  return medianMs([&] {
    kvq::gpu::launchGreedyEncode(path, d.x.get(), s.n, d.packed, bound, out, nullptr);
    for (int k = 0; k < s.K; ++k) {
      KVQ_CUDA_CHECK(cudaMemsetAsync(counts.get(), 0, sizeof(double) * s.C));
      KVQ_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double) * cg));
      kvq::gpu::computeEntryStats(d.stageInputs.get() + static_cast<size_t>(k) * s.n * s.g, s.n, s.g,
                                  d.codes.get() + static_cast<size_t>(k) * s.n, s.C, counts.get(), sums.get(),
                                  ws, nullptr);
      kvq::gpu::launchEmaUpdate(emaCount.get() + static_cast<size_t>(k) * s.C, emaSum.get() + k * cg,
                                books.get() + k * cg, counts.get(), sums.get(), s.C, s.g, 0.99, 1e-5,
                                total.get(), nullptr);
    }
  });
}

// cuBLAS doing the same dot products per stage ([N x g] x [g x C]), no argmin.
void gemmFloors(const Shape& s, DeviceData& d, double* sgemmMs, double* tf32Ms) {
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasCreate failed");
  DeviceBuffer<float> dots(static_cast<size_t>(s.n) * s.C);
  const float one = 1.0f, zero = 0.0f;
  const cublasMath_t modes[2] = {CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH};
  double* results[2] = {sgemmMs, tf32Ms};
  for (int m = 0; m < 2; ++m) {
    cublasSetMathMode(handle, modes[m]);
    *results[m] = medianMs([&] {
      for (int k = 0; k < s.K; ++k) {
        cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, s.C, static_cast<int>(s.n), s.g, &one,
                    d.books.get() + static_cast<size_t>(k) * s.C * s.g, s.g, d.x.get(), s.g, &zero,
                    dots.get(), s.C);
      }
    });
  }
  cublasDestroy(handle);
}

double backendEncodeMs(const Shape& s, const std::vector<float>& x, const std::vector<float>& books) {
  auto backend = kvq::gpu::makeCudaBackend();
  kvq::Codebooks cb(s.K, s.C, s.g);
  cb.data = books;
  std::vector<int32_t> codes(static_cast<size_t>(s.n) * s.K);
  std::vector<double> depthError(static_cast<size_t>(s.K), 0.0);
  backend->encodeGreedy(x.data(), s.n, cb, codes.data(), depthError.data(), nullptr);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  backend->encodeGreedy(x.data(), s.n, cb, codes.data(), depthError.data(), nullptr);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void printRow(const char* what, double ms, double flops) {
  if (flops > 0) {
    std::printf("%-46s %9.3f ms  %7.1f TFLOP/s\n", what, ms, flops / ms / 1e9);
  } else {
    std::printf("%-46s %9.3f ms\n", what, ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Shape s{argc > 1 ? std::atoll(argv[1]) : 524288, argc > 2 ? std::atoi(argv[2]) : 2048,
                argc > 3 ? std::atoi(argv[3]) : 8, argc > 4 ? std::atoi(argv[4]) : 32};
  try {
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (sm_%d%d, %d SMs)\nshape: N=%lld g=%d C=%d K=%d, %.1f GFLOP per encode\n",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, static_cast<long long>(s.n), s.g,
                s.C, s.K, s.flops() / 1e9);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(s.n) * s.g), books(static_cast<size_t>(s.K) * s.C * s.g);
    for (float& v : x) v = normal(rng);
    for (float& v : books) v = 0.5f * normal(rng);

    auto backend = kvq::gpu::makeCudaBackend();  // configures the kernels' shared-memory limits
    DeviceData d;
    d.x.upload(x.data(), x.size());
    d.books.upload(books.data(), books.size());
    kvq::gpu::packCodebooks(books.data(), s.K, s.C, s.g, s.g <= kvq::gpu::kMaxTensorCoreDim, d.packed,
                            nullptr);
    d.codes.resize(static_cast<size_t>(s.n) * s.K);
    d.residual.resize(x.size());
    d.stageInputs.resize(x.size() * s.K);
    KVQ_CUDA_CHECK(cudaDeviceSynchronize());

    const bool tc = s.g <= kvq::gpu::kMaxTensorCoreDim;
    const double encTc = tc ? encodeMs(s, d, EncodePath::TensorCore, false) : 0.0;
    const double encTcRes = tc ? encodeMs(s, d, EncodePath::TensorCore, true) : 0.0;
    const double encExact = encodeMs(s, d, EncodePath::Exact, false);
    const double share = tc ? fallbackShare(s, d) : 1.0;
    const double stepTc = tc ? trainStepMs(s, d, EncodePath::TensorCore) : 0.0;
    const double stepExact = trainStepMs(s, d, EncodePath::Exact);
    double sgemm = 0.0, tf32 = 0.0;
    gemmFloors(s, d, &sgemm, &tf32);
    const double viaBackend = backendEncodeMs(s, x, books);

    printRow("encode, tensor cores + exact re-rank", encTc, s.flops());
    printRow("encode + final residual, tensor cores", encTcRes, s.flops());
    printRow("encode, exact fp32 (--exact)", encExact, s.flops());
    std::printf("%-46s %9.4f %%\n", "decisions left to the exact search", 100.0 * share);
    printRow("EMA training step, tensor cores", stepTc, s.flops());
    printRow("EMA training step, exact fp32", stepExact, s.flops());
    printRow("cuBLAS SGEMM, same dot products", sgemm, s.flops());
    printRow("cuBLAS TF32 GEMM, same dot products", tf32, s.flops());
    printRow("Backend::encodeGreedy, host arrays", viaBackend, 0.0);
    std::printf(
        "BENCH_JSON {\"device\": \"%s\", \"vectors\": %lld, \"C\": %d, \"K\": %d, \"g\": %d, \"gflop\": "
        "%.1f, "
        "\"encode_ms\": %.4f, \"encode_residual_ms\": %.4f, \"encode_exact_ms\": %.4f, \"fallback_share\": "
        "%.6f, "
        "\"ema_step_ms\": %.4f, \"ema_step_exact_ms\": %.4f, \"sgemm_ms\": %.4f, \"tf32_gemm_ms\": %.4f, "
        "\"backend_encode_ms\": %.3f}\n",
        prop.name, static_cast<long long>(s.n), s.C, s.K, s.g, s.flops() / 1e9, encTc, encTcRes, encExact,
        share, stepTc, stepExact, sgemm, tf32, viaBackend);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpu_rvq: %s\n", e.what());
    return 1;
  }
  return 0;
}
