// The CUDA implementation of kvq::Backend. Plain C++ header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kvq/rvq/backend.h"

namespace kvq::gpu {

struct CudaBackendOptions {
  int device = 0;
  // Exact fp32 search on CUDA cores only (--exact), no tensor-core candidates. Both give
  // the CPU's codes bit for bit (docs/gpu.md); groups wider than 32 channels always take it.
  bool exact = false;
  // Vectors per device batch: fixed (a multiple of 256, the CPU's error tile) so that no
  // result depends on the device's free memory; every sum continues across batches.
  int64_t chunkVectors = int64_t{1} << 20;
  // When a call cannot run on this device (its group size needs more shared memory than a
  // block may have), run it on the CPU and say so in name() instead of throwing
  // Error(Resource). Set by --backend auto.
  bool cpuFallback = false;
  int cpuThreads = 0;  // of that CPU fallback and of beam search (0: OpenMP's default)
};

// A backend on CUDA device options.device. Throws kvq::Error(Resource) when the device
// cannot be used (no device, driver too old, out of memory at set-up) and BadInput when
// chunkVectors is not a positive multiple of 256.
std::unique_ptr<Backend> makeCudaBackend(const CudaBackendOptions& options = {});

// Registers a factory (device 0, a self-test kernel, the request's options) with core, so
// that kvq::makeBackend("cuda" | "auto") can use it. Call once from main().
void registerCudaBackend();

}  // namespace kvq::gpu
