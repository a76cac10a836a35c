// The CPU backend: exact tiled nearest-entry search with hand-vectorised
// AVX-512/AVX2 kernels chosen at run time, OpenMP over tiles (docs/engine.md).
#pragma once

#include <memory>

#include "kvq/rvq/backend.h"

namespace kvq {

// threads <= 0: OpenMP's default.
std::unique_ptr<Backend> makeCpuBackend(int threads = 0);

}  // namespace kvq
