#include <vector>

#include "cuda_check.h"
#include "kvq/gpu/cuda_device.h"

namespace kvq::gpu {
namespace {

// out[i] = 2*in[i] + i: a result that a device running the wrong code cannot fake.
__global__ void selfTestKernel(const float* in, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = 2.0f * in[i] + static_cast<float>(i);
}

}  // namespace

std::vector<CudaDeviceInfo> listCudaDevices() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver ||
      status == cudaErrorInitializationError || status == cudaErrorSystemDriverMismatch) {
    (void)cudaGetLastError();  // clear the sticky status
    return {};
  }
  KVQ_CUDA_CHECK(status);
  std::vector<CudaDeviceInfo> devices;
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    KVQ_CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
    CudaDeviceInfo info;
    info.index = d;
    info.name = prop.name;
    info.totalMemory = prop.totalGlobalMem;
    info.computeMajor = prop.major;
    info.computeMinor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    KVQ_CUDA_CHECK(cudaSetDevice(d));
    size_t freeBytes = 0;
    size_t totalBytes = 0;
    KVQ_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
    info.freeMemory = freeBytes;
    devices.push_back(info);
  }
  return devices;
}

void cudaSelfTest(int device) {
  constexpr int kN = 1000;
  KVQ_CUDA_CHECK(cudaSetDevice(device));
  std::vector<float> host(kN);
  for (int i = 0; i < kN; ++i) host[i] = 0.5f * static_cast<float>(i);
  float* in = nullptr;
  float* out = nullptr;
  KVQ_CUDA_CHECK(cudaMalloc(&in, kN * sizeof(float)));
  const cudaError_t outStatus = cudaMalloc(&out, kN * sizeof(float));
  if (outStatus != cudaSuccess) {
    cudaFree(in);
    KVQ_CUDA_CHECK(outStatus);
  }
  cudaError_t status = cudaMemcpy(in, host.data(), kN * sizeof(float), cudaMemcpyHostToDevice);
  if (status == cudaSuccess) {
    selfTestKernel<<<(kN + 255) / 256, 256>>>(in, out, kN);
    status = cudaGetLastError();
  }
  std::vector<float> result(kN);
  if (status == cudaSuccess)
    status = cudaMemcpy(result.data(), out, kN * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(in);
  cudaFree(out);
  KVQ_CUDA_CHECK(status);
  for (int i = 0; i < kN; ++i) {
    if (result[i] != 2.0f * host[i] + static_cast<float>(i)) {
      throw Error(ErrorKind::Internal, "", "CUDA self-test on device " + std::to_string(device),
                  "kernel result wrong at element " + std::to_string(i));
    }
  }
}

}  // namespace kvq::gpu
