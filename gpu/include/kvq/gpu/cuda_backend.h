// The CUDA implementation of kvq::Backend. Plain C++ header.
#pragma once

#include <memory>
#include <string>

#include "kvq/rvq/backend.h"

namespace kvq::gpu {

// A backend on CUDA device `device`. Throws kvq::Error(Resource) when the device
// cannot be used (no device, driver too old, out of memory at set-up).
std::unique_ptr<Backend> makeCudaBackend(int device = 0);

// Registers makeCudaBackend(0) + a self-test as core's GPU factory, so that
// kvq::makeBackend("cuda" | "auto") can use it. Call once from main().
void registerCudaBackend();

}  // namespace kvq::gpu
