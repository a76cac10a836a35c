#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"

#include <utility>

#include "base/factory_slot.h"

namespace kvq {
namespace {

FactorySlot<GpuBackendFactory>& gpuFactory() {
  static FactorySlot<GpuBackendFactory> slot;
  return slot;
}

}  // namespace

int gpuDeviceForSlot(int slot, int devices) {
  if (devices < 1 || slot < 0) return 0;
  return slot % devices;
}

void registerGpuBackendFactory(GpuBackendFactory factory) {
  gpuFactory().set(std::move(factory));
}

bool gpuBackendBuilt() {
  return static_cast<bool>(gpuFactory().get());
}

std::unique_ptr<Backend> makeBackend(const std::string& choice, int cpuThreads, std::string* note) {
  BackendOptions options;
  options.cpuThreads = cpuThreads;
  return makeBackend(choice, options, note);
}

std::unique_ptr<Backend> makeBackend(const std::string& choice, const BackendOptions& options,
                                     std::string* note) {
  const int cpuThreads = options.cpuThreads;
  GpuBackendRequest request;
  request.exact = options.gpuExact;
  request.cpuThreads = cpuThreads;
  request.deviceSlot = options.gpuSlot;
  const GpuBackendFactory factory = gpuFactory().get();
  return chooseEngine<Backend>(
      choice, "backend", static_cast<bool>(factory), "this build has no CUDA backend",
      [&] { return makeCpuBackend(cpuThreads); },
      [&](bool automatic) {
        request.cpuFallback = automatic;
        return factory(request);
      },
      note);
}

}  // namespace kvq
