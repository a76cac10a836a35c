// DeviceBuffer<T>: an owning, move-only device allocation. Allocation failure
// becomes kvq::Error(Resource) so callers can fall back to the CPU.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "cuda_check.h"

namespace kvq::gpu {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { resize(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : m_ptr(std::exchange(other.m_ptr, nullptr)), m_count(std::exchange(other.m_count, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      m_ptr = std::exchange(other.m_ptr, nullptr);
      m_count = std::exchange(other.m_count, 0);
    }
    return *this;
  }

  // Grows (never shrinks) to hold at least `count` elements; contents are not kept.
  void resize(size_t count) {
    if (count <= m_count) return;
    release();
    void* ptr = nullptr;
    const cudaError_t status = cudaMalloc(&ptr, count * sizeof(T));
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      throw Error(ErrorKind::Resource, "", "CUDA device memory",
                  "cannot allocate " + std::to_string(count * sizeof(T)) + " bytes (" +
                      cudaGetErrorString(status) + ")");
    }
    m_ptr = static_cast<T*>(ptr);
    m_count = count;
  }
  void upload(const T* host, size_t count) {
    resize(count);
    KVQ_CUDA_CHECK(cudaMemcpy(m_ptr, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, size_t count) const {
    KVQ_CUDA_CHECK(cudaMemcpy(host, m_ptr, count * sizeof(T), cudaMemcpyDeviceToHost));
  }
  T* get() const { return m_ptr; }
  size_t size() const { return m_count; }

 private:
  void release() {
    if (m_ptr != nullptr) cudaFree(m_ptr);
    m_ptr = nullptr;
    m_count = 0;
  }
  T* m_ptr = nullptr;
  size_t m_count = 0;
};

}  // namespace kvq::gpu
