// CudaBackend: kvq::Backend on one CUDA device.
//
// Encoding runs every stage of a chunk of vectors in one fused kernel (greedy_encode.cu);
// EMA steps compute assignments, deterministic per-entry statistics and the
// Laplace-smoothed update on the device (entry_stats.cu). Host arrays are uploaded per
// call; chunks bound device memory so layers larger than the device are processed in
// pieces. Beam search is delegated to the CPU backend (not yet on the device).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "cuda_check.h"
#include "device_buffer.h"
#include "entry_stats.h"
#include "kvq/gpu/cuda_backend.h"
#include "kvq/gpu/cuda_device.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : m_device(device), m_cpu(makeCpuBackend()) {
    KVQ_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    m_name = std::string("CUDA: ") + prop.name;
    // A blocking stream: it orders itself with the legacy default stream, on which the
    // pageable cudaMemcpy uploads and downloads of DeviceBuffer run, so a kernel never
    // reads a buffer whose upload is still in flight and an upload of the next chunk
    // never overwrites a buffer a kernel is still reading.
    KVQ_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamDefault));
  }
  ~CudaBackend() override {
    if (m_stream != nullptr) cudaStreamDestroy(m_stream);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return m_name; }

  void nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
               float* dist) override {
    Codebooks one(1, C, g);
    std::memcpy(one.data.data(), codebook, one.data.size() * sizeof(float));
    std::vector<float> residual(dist != nullptr ? static_cast<size_t>(n) * g : 0);
    encodeGreedy(x, n, one, codes, nullptr, dist != nullptr ? residual.data() : nullptr);
    if (dist == nullptr) return;
    for (int64_t i = 0; i < n; ++i) {
      double s = 0.0;
      for (int d = 0; d < g; ++d) s += static_cast<double>(residual[i * g + d]) * residual[i * g + d];
      dist[i] = static_cast<float>(s);
    }
  }

  void encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes, double* depthError,
                    float* residual) override {
    use();
    const int K = books.depth;
    const int C = books.size;
    const int g = books.dim;
    uploadBooks(books);
    const int64_t chunk = chunkVectors(g, K);
    std::vector<double> blockError;
    for (int64_t begin = 0; begin < n; begin += chunk) {
      const int64_t count = std::min(chunk, n - begin);
      m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
      m_codes.resize(static_cast<size_t>(count) * K);
      const int64_t blocks = greedyEncodeBlocks(count);
      m_blockError.resize(static_cast<size_t>(blocks) * K);
      if (residual != nullptr) m_residual.resize(static_cast<size_t>(count) * g);
      launchGreedyEncode(m_x.get(), count, g, m_books.get(), m_norms.get(), K, C, m_codes.get(),
                         m_blockError.get(), residual != nullptr ? m_residual.get() : nullptr, m_stream);
      KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
      m_codes.download(codes + begin * K, static_cast<size_t>(count) * K);
      if (residual != nullptr) m_residual.download(residual + begin * g, static_cast<size_t>(count) * g);
      if (depthError != nullptr) {
        blockError.resize(static_cast<size_t>(blocks) * K);
        m_blockError.download(blockError.data(), blockError.size());
        for (int64_t b = 0; b < blocks; ++b) {
          for (int k = 0; k < K; ++k) depthError[k] += blockError[b * K + k];
        }
      }
    }
  }

  void encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                  double* depthError, float* residual) override {
    if (beam <= 1) {
      encodeGreedy(x, n, books, codes, depthError, residual);
      return;
    }
    m_cpu->encodeBeam(x, n, books, beam, codes, depthError, residual);
  }

  void accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                  double* sums) override {
    use();
    std::vector<double> hostCounts(C);
    std::vector<double> hostSums(static_cast<size_t>(C) * g);
    zeroStats(C, g);
    const int64_t chunk = chunkVectors(g, 1);
    for (int64_t begin = 0; begin < n; begin += chunk) {
      const int64_t count = std::min(chunk, n - begin);
      m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
      m_codes.upload(codes + begin, static_cast<size_t>(count));
      computeEntryStats(m_x.get(), count, g, m_codes.get(), C, m_counts.get(), m_sums.get(), m_workspace,
                        m_stream);
    }
    KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    m_counts.download(hostCounts.data(), hostCounts.size());
    m_sums.download(hostSums.data(), hostSums.size());
    for (int i = 0; i < C; ++i) counts[i] += hostCounts[i];
    for (size_t i = 0; i < hostSums.size(); ++i) sums[i] += hostSums[i];
  }

  void emaStep(const float* x, int64_t n, float* codebook, int C, int g, double decay, double eps,
               double* emaCount, double* emaSum, int32_t* codes) override {
    use();
    Codebooks one(1, C, g);
    std::memcpy(one.data.data(), codebook, one.data.size() * sizeof(float));
    uploadBooks(one);
    zeroStats(C, g);
    const int64_t chunk = chunkVectors(g, 1);
    for (int64_t begin = 0; begin < n; begin += chunk) {
      const int64_t count = std::min(chunk, n - begin);
      m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
      m_codes.resize(static_cast<size_t>(count));
      m_blockError.resize(static_cast<size_t>(greedyEncodeBlocks(count)));
      launchGreedyEncode(m_x.get(), count, g, m_books.get(), m_norms.get(), 1, C, m_codes.get(),
                         m_blockError.get(), nullptr, m_stream);
      computeEntryStats(m_x.get(), count, g, m_codes.get(), C, m_counts.get(), m_sums.get(), m_workspace,
                        m_stream);
      if (codes != nullptr) {
        KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
        m_codes.download(codes + begin, static_cast<size_t>(count));
      }
    }
    m_emaCount.upload(emaCount, static_cast<size_t>(C));
    m_emaSum.upload(emaSum, static_cast<size_t>(C) * g);
    m_total.resize(1);
    launchEmaUpdate(m_emaCount.get(), m_emaSum.get(), m_books.get(), m_counts.get(), m_sums.get(), C, g,
                    decay, eps, m_total.get(), m_stream);
    KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    m_emaCount.download(emaCount, static_cast<size_t>(C));
    m_emaSum.download(emaSum, static_cast<size_t>(C) * g);
    m_books.download(codebook, static_cast<size_t>(C) * g);
  }

 private:
  void use() const { KVQ_CUDA_CHECK(cudaSetDevice(m_device)); }

  void uploadBooks(const Codebooks& books) {
    const size_t count = books.data.size();
    m_books.upload(books.data.data(), count);
    const int64_t rows = static_cast<int64_t>(books.depth) * books.size;
    m_norms.resize(static_cast<size_t>(rows));
    launchEntryNorms(m_books.get(), rows, books.dim, m_norms.get(), m_stream);
  }

  void zeroStats(int C, int g) {
    m_counts.resize(static_cast<size_t>(C));
    m_sums.resize(static_cast<size_t>(C) * g);
    KVQ_CUDA_CHECK(cudaMemsetAsync(m_counts.get(), 0, sizeof(double) * C, m_stream));
    KVQ_CUDA_CHECK(cudaMemsetAsync(m_sums.get(), 0, sizeof(double) * C * g, m_stream));
  }

  // Vectors per chunk: at most a quarter of free device memory for x, residual and codes.
  int64_t chunkVectors(int g, int K) const {
    size_t freeBytes = 0;
    size_t totalBytes = 0;
    KVQ_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
    const size_t perVector = sizeof(float) * (2 * static_cast<size_t>(g)) + sizeof(int32_t) * (K + 3);
    const auto fit = static_cast<int64_t>(freeBytes / 4 / perVector);
    return std::max<int64_t>(4096, std::min<int64_t>(int64_t{1} << 22, fit));
  }

  int m_device;
  std::string m_name;
  cudaStream_t m_stream = nullptr;
  std::unique_ptr<Backend> m_cpu;
  DeviceBuffer<float> m_x, m_books, m_norms, m_residual;
  DeviceBuffer<int32_t> m_codes;
  DeviceBuffer<double> m_blockError, m_counts, m_sums, m_emaCount, m_emaSum, m_total;
  EntryStatsWorkspace m_workspace;
};

}  // namespace

std::unique_ptr<Backend> makeCudaBackend(int device) {
  const auto devices = listCudaDevices();
  if (device < 0 || device >= static_cast<int>(devices.size())) {
    throw Error(ErrorKind::Resource, "", "--backend cuda",
                devices.empty() ? "no CUDA device or driver on this machine"
                                : "CUDA device " + std::to_string(device) + " does not exist");
  }
  return std::make_unique<CudaBackend>(device);
}

void registerCudaBackend() {
  registerGpuBackendFactory([]() {
    auto backend = makeCudaBackend(0);
    cudaSelfTest(0);
    return backend;
  });
}

}  // namespace kvq::gpu
