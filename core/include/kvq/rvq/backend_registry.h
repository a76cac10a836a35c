// Choosing a compute backend by name: "cpu", "cuda" or "auto".
//
// core cannot depend on gpu/, so the CUDA backend registers a factory here at start-up
// (kvq::gpu::registerCudaBackend(), called by the CLI's and the GUI's main()). Without
// a registered factory, "cuda" is refused and "auto" is the CPU.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "kvq/rvq/backend.h"

namespace kvq {

// What makeBackend asks of the GPU backend.
struct GpuBackendRequest {
  bool exact = false;        // exact fp32 search only, no tensor-core candidates (--exact)
  bool cpuFallback = false;  // "auto": run a call the device cannot take on the CPU, and say so
  int cpuThreads = 0;        // threads of the CPU work it delegates
  int deviceSlot = 0;        // the device: gpuDeviceForSlot(deviceSlot, visible devices)
};

// Which of `devices` visible GPUs the process of `slot` uses: slot modulo devices, so
// that the ranks of one node (slot = the node-local MPI rank) each take their own
// GPU and share them evenly when there are more ranks than GPUs. 0 when devices < 1;
// slot < 0 counts as 0. CUDA_VISIBLE_DEVICES decides which GPUs are visible.
int gpuDeviceForSlot(int slot, int devices);

// Creates the GPU backend or throws Error(Resource) saying why it cannot.
using GpuBackendFactory = std::function<std::unique_ptr<Backend>(const GpuBackendRequest&)>;
void registerGpuBackendFactory(GpuBackendFactory factory);
bool gpuBackendBuilt();

// choice: "cpu" | "cuda" | "auto" (CUDA when a device is present and usable, else CPU).
// cpuThreads <= 0: OpenMP's default. note (nullable) receives one line saying which
// backend was chosen and, for auto, why the GPU was not. Throws Error(BadInput) on an
// unknown name and Error(Resource) when "cuda" cannot be had.
std::unique_ptr<Backend> makeBackend(const std::string& choice, int cpuThreads = 0,
                                     std::string* note = nullptr);

// The same with the GPU options: gpuExact selects the GPU's exact fp32 search (the CPU is
// always exact; both give the same codes).
struct BackendOptions {
  int cpuThreads = 0;
  bool gpuExact = false;
  int gpuSlot = 0;  // GpuBackendRequest::deviceSlot
};
std::unique_ptr<Backend> makeBackend(const std::string& choice, const BackendOptions& options,
                                     std::string* note = nullptr);

}  // namespace kvq
