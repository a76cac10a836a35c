// Where gpu/ leaves a factory for core at start-up (the RVQ backend, kvq/rvq/backend_registry.h;
// the model pass's weight products, kvq/model/weight_gemm.h): core cannot call CUDA itself.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "kvq/base/error.h"

namespace kvq {

// One factory, set at start-up and copied out by whichever thread makes an engine; empty until set.
template <class Factory>
class FactorySlot {
 public:
  void set(Factory factory) {
    const std::lock_guard<std::mutex> lock(m_mutex);
    m_factory = std::move(factory);
  }
  Factory get() const {
    const std::lock_guard<std::mutex> lock(m_mutex);
    return m_factory;
  }

 private:
  mutable std::mutex m_mutex;
  Factory m_factory;
};

// The engine `choice` names: "cpu" (makeCpu()), "cuda" (makeGpu(false); Error(Resource, noGpu)
// when gpuBuilt is false) or "auto" (makeGpu(true), and makeCpu() when there is no GPU engine or
// making it throws an Error); BadInput for another choice. note (nullable) receives
// "<label>: <engine name>", with " (auto)" or " (auto; no GPU: <why>)" for "auto".
template <class Engine, class MakeCpu, class MakeGpu>
std::unique_ptr<Engine> chooseEngine(const std::string& choice, const char* label, bool gpuBuilt,
                                     const std::string& noGpu, MakeCpu makeCpu, MakeGpu makeGpu,
                                     std::string* note) {
  auto made = [&](std::unique_ptr<Engine> engine, const std::string& how) {
    if (note != nullptr) *note = std::string(label) + ": " + engine->name() + how;
    return engine;
  };
  if (choice == "cpu") return made(makeCpu(), "");
  if (choice == "cuda") {
    if (!gpuBuilt) throw Error(ErrorKind::Resource, "", "backend", noGpu);
    return made(makeGpu(false), "");
  }
  if (choice != "auto") {
    throw Error(ErrorKind::BadInput, "", "backend",
                "unknown backend '" + choice + "' (expected cpu, cuda or auto)");
  }
  std::string why = noGpu;
  if (gpuBuilt) {
    try {
      return made(makeGpu(true), " (auto)");
    } catch (const Error& e) {  // any failure of the device: the CPU still gives the answer
      why = e.problem();
    }
  }
  return made(makeCpu(), " (auto; no GPU: " + why + ")");
}

}  // namespace kvq
