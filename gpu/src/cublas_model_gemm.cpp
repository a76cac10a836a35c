#include "kvq/gpu/cublas_model_gemm.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda_check.h"
#include "device_buffer.h"
#include "kvq/base/error.h"

namespace kvq::gpu {

namespace {

// cuBLAS is opened when the first engine is made, not linked: linked, libcublasLt (a 500 MB
// file) is mapped and its static data initialised in every process before main() — about
// 200 MB resident in each kvq process, isolated validators included, for the few runs that
// use it. The functions the engine calls, resolved from the library (names as exported:
// cublas_v2.h maps cublasCreate and others to their _v2 symbols).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) setStream = nullptr;
  decltype(&cublasSetMathMode) setMathMode = nullptr;
  // cublasGemmEx has a C++ overload (cudaDataType compute type) beside the exported one.
  using GemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                    const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                                    int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                                    cublasGemmAlgo_t);
  GemmEx gemmEx = nullptr;
  decltype(&cublasGetStatusName) statusName = nullptr;
  decltype(&cublasGetStatusString) statusString = nullptr;
};

CublasApi g_api;
std::mutex g_apiMutex;

std::string defaultCublasLibrary() {
  return "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
}

template <class F>
void resolve(void* library, const std::string& file, const char* symbol, F& into) {
  void* address = dlsym(library, symbol);
  if (address == nullptr) {
    throw Error(ErrorKind::Resource, file, "loading cuBLAS", std::string("it has no symbol ") + symbol);
  }
  into = reinterpret_cast<F>(address);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast): dlsym
}

const CublasApi& cublasApi() {
  loadCublas();
  return g_api;
}

void checkCublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const ErrorKind kind = status == CUBLAS_STATUS_ALLOC_FAILED || status == CUBLAS_STATUS_NOT_INITIALIZED
                             ? ErrorKind::Resource
                             : ErrorKind::Internal;
  throw Error(kind, "", std::string("cuBLAS ") + call,
              std::string(g_api.statusName(status)) + ": " + g_api.statusString(status));
}

#define KVQ_CUBLAS_CHECK(call) checkCublas((call), #call)

// Owners of the stream and the handle, so that a constructor that throws half-way frees them.
struct StreamDeleter {
  void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
struct HandleDeleter {
  void operator()(cublasHandle_t h) const { g_api.destroy(h); }
};

std::string mebibytes(size_t bytes) {
  return std::to_string((bytes + (size_t{1} << 20) - 1) >> 20) + " MiB";
}

class CublasWeightGemm : public WeightGemm {
 public:
  CublasWeightGemm(const DecoderModel& model, const CublasGemmOptions& options)
      : m_compute(options.allowTf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F) {
    openDevice(options.device);
    uploadWeights(modelWeightMatrices(model));
  }

  std::string name() const override {
    return std::string("cuBLAS ") + (m_compute == CUBLAS_COMPUTE_32F ? "fp32" : "TF32") + " on " +
           m_deviceName;
  }

  // Row-major c[m, n] = a[m, k] w[n, k]^T is, read column-major, c^T = w^T(as [k, n])^T a^T:
  // one GEMM with op(w) = T, op(a) = N and no copies.
  void multiplyABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w, float beta,
                   float* c, int64_t ldc) override {
    if (m <= 0 || n <= 0) return;
    const auto it = m_weights.find(w);
    if (it == m_weights.end()) {
      throwInternal("cuBLAS model pass", "a product with a matrix that is not one of the model's weights");
    }
    const auto row = static_cast<size_t>(k) * sizeof(float), outRow = static_cast<size_t>(n) * sizeof(float);
    m_a.resize(static_cast<size_t>(m * k));
    m_c.resize(static_cast<size_t>(m * n));
    KVQ_CUDA_CHECK(cudaMemcpy2DAsync(m_a.get(), row, a, static_cast<size_t>(lda) * sizeof(float), row,
                                     static_cast<size_t>(m), cudaMemcpyHostToDevice, m_stream.get()));
    if (beta != 0.0f) {
      KVQ_CUDA_CHECK(cudaMemcpy2DAsync(m_c.get(), outRow, c, static_cast<size_t>(ldc) * sizeof(float), outRow,
                                       static_cast<size_t>(m), cudaMemcpyHostToDevice, m_stream.get()));
    }
    const float alpha = 1.0f;
    KVQ_CUBLAS_CHECK(m_api->gemmEx(m_handle.get(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                                   static_cast<int>(m), static_cast<int>(k), &alpha, it->second, CUDA_R_32F,
                                   static_cast<int>(k), m_a.get(), CUDA_R_32F, static_cast<int>(k), &beta,
                                   m_c.get(), CUDA_R_32F, static_cast<int>(n), m_compute,
                                   CUBLAS_GEMM_DEFAULT));
    KVQ_CUDA_CHECK(cudaMemcpy2DAsync(c, static_cast<size_t>(ldc) * sizeof(float), m_c.get(), outRow, outRow,
                                     static_cast<size_t>(m), cudaMemcpyDeviceToHost, m_stream.get()));
    KVQ_CUDA_CHECK(cudaStreamSynchronize(m_stream.get()));
  }

 private:
  void openDevice(int device) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      throw Error(ErrorKind::Resource, "", "--backend cuda", "no CUDA device or driver on this machine");
    }
    if (device < 0 || device >= count) {
      throw Error(ErrorKind::Resource, "", "--backend cuda",
                  "CUDA device " + std::to_string(device) + " does not exist");
    }
    m_api = &cublasApi();
    KVQ_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    m_deviceName = prop.name;
    cudaStream_t stream = nullptr;
    KVQ_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    m_stream.reset(stream);
    cublasHandle_t handle = nullptr;
    KVQ_CUBLAS_CHECK(m_api->create(&handle));
    m_handle.reset(handle);
    KVQ_CUBLAS_CHECK(m_api->setStream(handle, stream));
    // Default math: no tensor-core down-conversion unless the compute type asks for TF32.
    KVQ_CUBLAS_CHECK(m_api->setMathMode(handle, CUBLAS_DEFAULT_MATH));
  }

  // One device copy of each matrix, made here and never again: the pass's products reuse them.
  void uploadWeights(const std::vector<WeightMatrix>& matrices) {
    size_t bytes = 0;
    for (const WeightMatrix& w : matrices) bytes += static_cast<size_t>(w.rows * w.cols) * sizeof(float);
    size_t freeBytes = 0, totalBytes = 0;
    KVQ_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
    const size_t headroom = size_t{256} << 20;  // activations and cuBLAS's workspace
    if (bytes + headroom > freeBytes) {
      throw Error(ErrorKind::Resource, "", "CUDA device memory",
                  "the model's float32 weights need " + mebibytes(bytes) + " (+ " + mebibytes(headroom) +
                      " for activations), the device has " + mebibytes(freeBytes) + " free");
    }
    m_buffers.reserve(matrices.size());
    for (const WeightMatrix& w : matrices) {
      m_buffers.emplace_back();
      m_buffers.back().upload(w.data, static_cast<size_t>(w.rows * w.cols));
      m_weights[w.data] = m_buffers.back().get();
    }
  }

  const CublasApi* m_api = nullptr;  // set once the device is known to exist
  cublasComputeType_t m_compute;
  std::string m_deviceName;
  std::unique_ptr<CUstream_st, StreamDeleter> m_stream;  // declared first: destroyed after the handle
  std::unique_ptr<cublasContext, HandleDeleter> m_handle;
  std::vector<DeviceBuffer<float>> m_buffers;
  std::unordered_map<const float*, const float*> m_weights;  // host matrix -> its device copy
  DeviceBuffer<float> m_a, m_c;                              // activations of the current product
};

}  // namespace

void loadCublas(const std::string& library) {
  const std::lock_guard<std::mutex> lock(g_apiMutex);
  if (g_api.create != nullptr) return;
  const std::string file = library.empty() ? defaultCublasLibrary() : library;
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
#ifdef KVQ_CUDA_LIBRARY_DIR
  // Not on the loader's path: the toolkit the project was built with.
  if (handle == nullptr && library.empty()) {
    handle = dlopen((std::string(KVQ_CUDA_LIBRARY_DIR) + "/" + file).c_str(), RTLD_NOW | RTLD_LOCAL);
  }
#endif
  if (handle == nullptr) {
    const char* why = dlerror();
    throw Error(ErrorKind::Resource, file, "loading cuBLAS",
                std::string(why != nullptr ? why : "not found") +
                    " (the CUDA toolkit's cuBLAS is needed for the model pass on the GPU)");
  }
  // The library stays open for the process's life; the table is filled only when complete.
  CublasApi api;
  resolve(handle, file, "cublasCreate_v2", api.create);
  resolve(handle, file, "cublasDestroy_v2", api.destroy);
  resolve(handle, file, "cublasSetStream_v2", api.setStream);
  resolve(handle, file, "cublasSetMathMode", api.setMathMode);
  resolve(handle, file, "cublasGemmEx", api.gemmEx);
  resolve(handle, file, "cublasGetStatusName", api.statusName);
  resolve(handle, file, "cublasGetStatusString", api.statusString);
  g_api = api;
}

std::unique_ptr<WeightGemm> makeCublasWeightGemm(const DecoderModel& model,
                                                 const CublasGemmOptions& options) {
  return std::make_unique<CublasWeightGemm>(model, options);
}

void registerCublasModelGemm() {
  registerGpuGemmFactory([](const DecoderModel& model, const GpuGemmRequest& request) {
    CublasGemmOptions options;
    options.allowTf32 = request.allowTf32;
    return makeCublasWeightGemm(model, options);
  });
}

}  // namespace kvq::gpu
