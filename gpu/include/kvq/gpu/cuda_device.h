// CUDA device discovery. Plain C++ header: callers never see a CUDA type.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kvq::gpu {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;             // e.g. "NVIDIA H200"
  std::size_t totalMemory = 0;  // bytes
  std::size_t freeMemory = 0;   // bytes at the time of the query
  int computeMajor = 0;
  int computeMinor = 0;
  int multiprocessors = 0;
};

// Every usable CUDA device; empty when there is no device or no driver (never throws
// for those). Other CUDA failures throw kvq::Error(Internal) naming the call.
std::vector<CudaDeviceInfo> listCudaDevices();

// Runs a small kernel on `device` and checks its result: proves that the driver,
// the runtime and this build's architectures fit the device. Throws kvq::Error on failure.
void cudaSelfTest(int device);

}  // namespace kvq::gpu
