// CUDA status -> kvq::Error. CUDA failures never abort the program.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "kvq/base/error.h"

namespace kvq::gpu {

inline void checkCuda(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  const ErrorKind kind = status == cudaErrorMemoryAllocation ? ErrorKind::Resource : ErrorKind::Internal;
  throw Error(kind, "", std::string("CUDA ") + call,
              std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status));
}

}  // namespace kvq::gpu

#define KVQ_CUDA_CHECK(call) ::kvq::gpu::checkCuda((call), #call)
