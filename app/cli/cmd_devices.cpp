// kvq devices: the compute backends this build can use on this machine.
#include <omp.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "commands.h"
#ifdef KVQ_HAVE_CUDA
#include "kvq/gpu/cuda_device.h"
#endif

namespace kvq::cli {

void registerDevices(CLI::App& root) {
  CLI::App* cmd = root.add_subcommand("devices", "List the compute backends available to this build");
  cmd->callback([]() {
    std::printf("cpu   available   %d OpenMP threads\n", omp_get_max_threads());
#ifdef KVQ_HAVE_CUDA
    const auto devices = gpu::listCudaDevices();
    if (devices.empty()) std::printf("cuda  built, no CUDA device or driver on this machine\n");
    for (const auto& d : devices) {
      std::printf("cuda  device %d    %s, compute %d.%d, %d SMs, %.1f GiB (%.1f GiB free)\n", d.index,
                  d.name.c_str(), d.computeMajor, d.computeMinor, d.multiprocessors,
                  static_cast<double>(d.totalMemory) / (1 << 30),
                  static_cast<double>(d.freeMemory) / (1 << 30));
    }
#else
    std::printf("cuda  not built (this build has no CUDA backend)\n");
#endif
  });
}

}  // namespace kvq::cli
