// CudaBackend: kvq::Backend on one CUDA device, bit-equal to the CPU backend.
//
// Encoding runs every stage of a batch of vectors in one fused kernel: tensor-core TF32
// candidates re-ranked exactly (greedy_encode_tc.cu) for g <= 32, or the exact fp32
// kernel (greedy_encode.cu) with --exact and for wider groups; both compute the CPU's
// distances in the CPU's order. EMA steps run assignment, statistics and the update on
// the device with the CPU's arithmetic (entry_stats.cu). Host arrays travel per call, in
// batches of a fixed number of vectors (options.chunkVectors); every sum continues from
// one batch to the next, so results never depend on the batch size or free memory.
// Beam search is delegated to the CPU backend.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
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

// Raises the encode kernels' shared-memory limit once per device, whichever thread gets
// there first (cudaFuncSetAttribute is not meant to race with launches).
void configureDeviceOnce(int device, size_t optinBytes) {
  static std::mutex mutex;
  static std::set<int> configured;
  const std::lock_guard<std::mutex> lock(mutex);
  if (configured.count(device) != 0) return;
  setEncodeSharedLimit(optinBytes);
  configured.insert(device);
}

// The CPU backend's nearest() distance: |x - c|^2 accumulated in double in channel order
// (core/src/rvq/cpu_backend.cpp, squaredDistance), here on the host from the host arrays.
float cpuSquaredDistance(const float* a, const float* b, int g) {
  double s = 0.0;
  for (int d = 0; d < g; ++d) {
    const double t = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    s += t * t;
  }
  return static_cast<float>(s);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options)
      : m_options(options), m_cpu(makeCpuBackend(options.cpuThreads)) {
    KVQ_CUDA_CHECK(cudaSetDevice(options.device));
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, options.device));
    m_deviceName = prop.name;
    m_sharedLimit = prop.sharedMemPerBlockOptin;
    // A blocking stream: it orders itself with the legacy default stream, on which the
    // pageable cudaMemcpy uploads and downloads of DeviceBuffer run, so a kernel never
    // reads a buffer whose upload is still in flight and an upload of the next batch
    // never overwrites a buffer a kernel is still reading.
    KVQ_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamDefault));
    configureDeviceOnce(options.device, m_sharedLimit);
    // A device whose tensor cores disagree with the fragment layout the kernel assumes
    // gets the exact kernel (same codes, slower) rather than unproven candidates.
    if (!m_options.exact && tensorCoreLayoutErrors() != 0) {
      m_options.exact = true;
      m_note = "tensor-core layout self-test failed: exact fp32 search";
    }
  }
  ~CudaBackend() override {
    if (m_stream != nullptr) cudaStreamDestroy(m_stream);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override {
    std::string name =
        "CUDA: " + m_deviceName + (m_options.exact ? " (exact fp32)" : " (TF32 candidates, exact re-rank)");
    const std::lock_guard<std::mutex> lock(m_noteMutex);
    if (!m_note.empty()) name += "; " + m_note;
    return name;
  }

  void nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
               float* dist) override {
    if (n <= 0) return;
    if (!onDevice(g)) {
      m_cpu->nearest(x, n, codebook, C, g, codes, dist);
      return;
    }
    use();
    packCodebooks(codebook, 1, C, g, pathFor(g) == EncodePath::TensorCore, m_books, m_stream);
    encodeBatches(x, n, codes, nullptr, nullptr);
    if (dist == nullptr) return;
    for (int64_t i = 0; i < n; ++i) dist[i] = cpuSquaredDistance(x + i * g, codebook + codes[i] * g, g);
  }

  void encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes, double* depthError,
                    float* residual) override {
    if (n <= 0) return;
    if (!onDevice(books.dim)) {
      m_cpu->encodeGreedy(x, n, books, codes, depthError, residual);
      return;
    }
    use();
    packCodebooks(books.data.data(), books.depth, books.size, books.dim,
                  pathFor(books.dim) == EncodePath::TensorCore, m_books, m_stream);
    encodeBatches(x, n, codes, depthError, residual);
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
                  double* sums) override;
  void emaStep(const float* x, int64_t n, float* codebook, int C, int g, double decay, double eps,
               double* emaCount, double* emaSum, int32_t* codes) override;

 private:
  void use() const { KVQ_CUDA_CHECK(cudaSetDevice(m_options.device)); }

  EncodePath pathFor(int g) const {
    return !m_options.exact && g <= kMaxTensorCoreDim ? EncodePath::TensorCore : EncodePath::Exact;
  }

  // The kernel for the next call. Both give the same results; the tensor-core one is slow
  // when many decisions fall to its exact search (residuals that underflow into exact
  // ties, as on layers whose vectors repeat with the token), so after a call where more
  // than kSlowFallbackShare did, the exact kernel runs, with a tensor-core probe every
  // 16th call in case the data changed.
  EncodePath choosePath(int g) {
    const EncodePath path = pathFor(g);
    if (path == EncodePath::Exact || !m_preferExact) return path;
    return ++m_callsSinceProbe % 16 == 0 ? EncodePath::TensorCore : EncodePath::Exact;
  }
  void recordFallbacks(EncodePath path, int64_t decisions) {
    if (path != EncodePath::TensorCore || decisions <= 0) return;
    unsigned long long fallbacks = 0;
    m_fallbacks.download(&fallbacks, 1);
    m_preferExact = static_cast<double>(fallbacks) > kSlowFallbackShare * static_cast<double>(decisions);
  }
  // Launches the encode kernel of `path` for one batch, counting tensor-core fallbacks.
  void launchEncode(EncodePath path, int64_t count, EncodeOutputs out) {
    if (path == EncodePath::TensorCore) out.fallbacks = m_fallbacks.get();
    launchGreedyEncode(path, m_x.get(), count, m_books, candidateBound(m_books.dim), out, m_stream);
  }
  void resetFallbacks() {
    m_fallbacks.resize(1);
    KVQ_CUDA_CHECK(cudaMemsetAsync(m_fallbacks.get(), 0, sizeof(unsigned long long), m_stream));
  }
  static constexpr double kSlowFallbackShare = 0.25;

  // Whether an encode of groups of g channels fits a block's shared memory on this
  // device. If not: false (the caller runs the CPU) with a note when cpuFallback is set,
  // else Error(Resource).
  bool onDevice(int g) {
    const size_t need = encodeSharedBytes(pathFor(g), g);
    if (need <= m_sharedLimit) return true;
    const std::string why = "g = " + std::to_string(g) + " needs " + std::to_string(need) +
                            " bytes of shared memory per block; " + m_deviceName + " allows " +
                            std::to_string(m_sharedLimit);
    if (!m_options.cpuFallback) throw Error(ErrorKind::Resource, "", "CUDA backend", why);
    const std::lock_guard<std::mutex> lock(m_noteMutex);
    m_note = why + ": those groups ran on the CPU";
    return false;
  }

  // Greedy encoding of x through the stages in m_books, batch by batch.
  //   codes: [n, K] out; depthError: [K] += (nullable); residual: [n, g] out (nullable)
  void encodeBatches(const float* x, int64_t n, int32_t* codes, double* depthError, float* residual);

  void zeroStats(int C, int g) {
    m_counts.resize(static_cast<size_t>(C));
    m_sums.resize(static_cast<size_t>(C) * g);
    KVQ_CUDA_CHECK(cudaMemsetAsync(m_counts.get(), 0, sizeof(double) * C, m_stream));
    KVQ_CUDA_CHECK(cudaMemsetAsync(m_sums.get(), 0, sizeof(double) * C * g, m_stream));
  }

  CudaBackendOptions m_options;
  std::string m_deviceName;
  size_t m_sharedLimit = 0;
  mutable std::mutex m_noteMutex;
  std::string m_note;
  cudaStream_t m_stream = nullptr;
  std::unique_ptr<Backend> m_cpu;
  PackedCodebooks m_books;
  DeviceBuffer<unsigned long long> m_fallbacks;
  bool m_preferExact = false;
  int m_callsSinceProbe = 0;
  DeviceBuffer<float> m_x, m_residual;
  DeviceBuffer<int32_t> m_codes;
  DeviceBuffer<double> m_energies, m_tileSums, m_counts, m_sums, m_emaCount, m_emaSum, m_total;
  EntryStatsWorkspace m_workspace;
};

void CudaBackend::encodeBatches(const float* x, int64_t n, int32_t* codes, double* depthError,
                                float* residual) {
  const int K = m_books.depth;
  const int g = m_books.dim;
  const EncodePath path = choosePath(g);
  resetFallbacks();
  std::vector<double> tileSums;
  for (int64_t begin = 0; begin < n; begin += m_options.chunkVectors) {
    const int64_t count = std::min(m_options.chunkVectors, n - begin);
    const int64_t tiles = (count + kErrorTile - 1) / kErrorTile;
    m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
    m_codes.resize(static_cast<size_t>(count) * K);
    EncodeOutputs out;
    out.codes = m_codes.get();
    out.codeVectorStride = K;
    out.codeStageStride = 1;
    if (depthError != nullptr) {
      m_energies.resize(static_cast<size_t>(count) * K);
      m_tileSums.resize(static_cast<size_t>(tiles) * K);
      out.energies = m_energies.get();
    }
    if (residual != nullptr) {
      m_residual.resize(static_cast<size_t>(count) * g);
      out.residual = m_residual.get();
    }
    launchEncode(path, count, out);
    if (depthError != nullptr) launchTileErrorSums(m_energies.get(), count, K, m_tileSums.get(), m_stream);
    KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    m_codes.download(codes + begin * K, static_cast<size_t>(count) * K);
    if (residual != nullptr) m_residual.download(residual + begin * g, static_cast<size_t>(count) * g);
    if (depthError != nullptr) {
      // Tiles of 256 from the batch start; batches are multiples of 256, so these are the
      // CPU's tiles, added in the CPU's order.
      tileSums.resize(static_cast<size_t>(tiles) * K);
      m_tileSums.download(tileSums.data(), tileSums.size());
      for (int64_t t = 0; t < tiles; ++t) {
        for (int k = 0; k < K; ++k) depthError[k] += tileSums[static_cast<size_t>(t * K + k)];
      }
    }
  }
  recordFallbacks(path, n * K);
}

void CudaBackend::accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                             double* sums) {
  if (n <= 0) return;
  // Checked before anything moves: an out-of-range code would corrupt another entry's sums
  // on the device. Same error as the CPU backend.
  for (int64_t i = 0; i < n; ++i) {
    if (codes[i] < 0 || codes[i] >= C)
      throwInternal("accumulate", "code " + std::to_string(codes[i]) + " out of range");
  }
  use();
  // The caller's running sums continue on the device (the CPU adds into them in place).
  m_counts.upload(counts, static_cast<size_t>(C));
  m_sums.upload(sums, static_cast<size_t>(C) * g);
  for (int64_t begin = 0; begin < n; begin += m_options.chunkVectors) {
    const int64_t count = std::min(m_options.chunkVectors, n - begin);
    m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
    m_codes.upload(codes + begin, static_cast<size_t>(count));
    computeEntryStats(m_x.get(), count, g, m_codes.get(), C, m_counts.get(), m_sums.get(), m_workspace,
                      m_stream);
  }
  KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
  m_counts.download(counts, static_cast<size_t>(C));
  m_sums.download(sums, static_cast<size_t>(C) * g);
}

void CudaBackend::emaStep(const float* x, int64_t n, float* codebook, int C, int g, double decay, double eps,
                          double* emaCount, double* emaSum, int32_t* codes) {
  if (!onDevice(g)) {
    m_cpu->emaStep(x, n, codebook, C, g, decay, eps, emaCount, emaSum, codes);
    return;
  }
  use();
  const EncodePath path = choosePath(g);
  packCodebooks(codebook, 1, C, g, path == EncodePath::TensorCore, m_books, m_stream);
  zeroStats(C, g);
  resetFallbacks();
  for (int64_t begin = 0; begin < n; begin += m_options.chunkVectors) {
    const int64_t count = std::min(m_options.chunkVectors, n - begin);
    m_x.upload(x + begin * g, static_cast<size_t>(count) * g);
    m_codes.resize(static_cast<size_t>(count));
    EncodeOutputs out;
    out.codes = m_codes.get();
    launchEncode(path, count, out);
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
  launchEmaUpdate(m_emaCount.get(), m_emaSum.get(), m_books.rowMajor.get(), m_counts.get(), m_sums.get(), C,
                  g, decay, eps, m_total.get(), m_stream);
  KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream));
  m_emaCount.download(emaCount, static_cast<size_t>(C));
  m_emaSum.download(emaSum, static_cast<size_t>(C) * g);
  m_books.rowMajor.download(codebook, static_cast<size_t>(C) * g);
  recordFallbacks(path, n);
}

}  // namespace

std::unique_ptr<Backend> makeCudaBackend(const CudaBackendOptions& options) {
  if (options.chunkVectors <= 0 || options.chunkVectors % kErrorTile != 0) {
    throw Error(ErrorKind::BadInput, "", "CUDA batch size",
                std::to_string(options.chunkVectors) + " is not a positive multiple of " +
                    std::to_string(kErrorTile) + " vectors");
  }
  const auto devices = listCudaDevices();
  if (options.device < 0 || options.device >= static_cast<int>(devices.size())) {
    throw Error(ErrorKind::Resource, "", "--backend cuda",
                devices.empty() ? "no CUDA device or driver on this machine"
                                : "CUDA device " + std::to_string(options.device) + " does not exist");
  }
  return std::make_unique<CudaBackend>(options);
}

void registerCudaBackend() {
  registerGpuBackendFactory([](const GpuBackendRequest& request) {
    CudaBackendOptions options;
    options.exact = request.exact;
    options.cpuFallback = request.cpuFallback;
    options.cpuThreads = request.cpuThreads;
    options.device = gpuDeviceForSlot(request.deviceSlot, static_cast<int>(listCudaDevices().size()));
    auto backend = makeCudaBackend(options);
    cudaSelfTest(options.device);
    return backend;
  });
}

}  // namespace kvq::gpu
