#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"

#include <mutex>

#include "kvq/base/error.h"

namespace kvq {
namespace {

std::mutex& registryMutex() {
  static std::mutex mutex;
  return mutex;
}

GpuBackendFactory& gpuFactory() {
  static GpuBackendFactory factory;
  return factory;
}

}  // namespace

int gpuDeviceForSlot(int slot, int devices) {
  if (devices < 1 || slot < 0) return 0;
  return slot % devices;
}

void registerGpuBackendFactory(GpuBackendFactory factory) {
  const std::lock_guard<std::mutex> lock(registryMutex());
  gpuFactory() = std::move(factory);
}

bool gpuBackendBuilt() {
  const std::lock_guard<std::mutex> lock(registryMutex());
  return static_cast<bool>(gpuFactory());
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
  auto say = [note](const std::string& text) {
    if (note != nullptr) *note = text;
  };
  GpuBackendFactory factory;
  {
    const std::lock_guard<std::mutex> lock(registryMutex());
    factory = gpuFactory();
  }
  if (choice == "cpu") {
    auto cpu = makeCpuBackend(cpuThreads);
    say("backend: " + cpu->name());
    return cpu;
  }
  if (choice == "cuda") {
    if (!factory) throw Error(ErrorKind::Resource, "", "backend", "this build has no CUDA backend");
    auto gpu = factory(request);
    say("backend: " + gpu->name());
    return gpu;
  }
  if (choice != "auto") {
    throw Error(ErrorKind::BadInput, "", "backend",
                "unknown backend '" + choice + "' (expected cpu, cuda or auto)");
  }
  std::string why = "this build has no CUDA backend";
  if (factory) {
    try {
      request.cpuFallback = true;
      auto gpu = factory(request);
      say("backend: " + gpu->name() + " (auto)");
      return gpu;
    } catch (const Error& e) {
      why = e.problem();
    }
  }
  auto cpu = makeCpuBackend(cpuThreads);
  say("backend: " + cpu->name() + " (auto; no GPU: " + why + ")");
  return cpu;
}

}  // namespace kvq
