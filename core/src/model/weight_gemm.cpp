#include "kvq/model/weight_gemm.h"

#include <mutex>
#include <set>

#include "kvq/base/error.h"
#include "model/gemm.h"

namespace kvq {

namespace {

class CpuWeightGemm : public WeightGemm {
 public:
  std::string name() const override {
    return std::string("CPU (") + model::gemmEngineName(model::currentGemmEngine()) + ")";
  }
  void multiplyABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w, float beta,
                   float* c, int64_t ldc) override {
    // The engine is read per call so that the benchmark can switch it between passes.
    model::gemmABt(model::currentGemmEngine(), m, n, k, a, lda, w, k, beta, c, ldc);
  }
};

std::mutex& registryMutex() {
  static std::mutex mutex;
  return mutex;
}

GpuGemmFactory& gpuFactory() {
  static GpuGemmFactory factory;
  return factory;
}

}  // namespace

std::vector<WeightMatrix> modelWeightMatrices(const DecoderModel& model) {
  const ModelConfig& c = model.config;
  const int64_t hidden = c.hidden, qWidth = static_cast<int64_t>(c.numQHeads) * c.headDim;
  std::vector<WeightMatrix> out;
  for (const LayerWeights& w : model.layers) {
    out.push_back({w.wqkv.data(), c.qkvRows(), hidden});
    out.push_back({w.wo.data(), hidden, qWidth});
    out.push_back({w.wGateUp.data(), 2 * static_cast<int64_t>(c.ffn), hidden});
    out.push_back({w.wDown.data(), hidden, c.ffn});
  }
  out.push_back({model.head().data(), c.vocab, hidden});
  return out;
}

std::unique_ptr<WeightGemm> makeCpuWeightGemm() {
  return std::make_unique<CpuWeightGemm>();
}

void registerGpuGemmFactory(GpuGemmFactory factory) {
  const std::lock_guard<std::mutex> lock(registryMutex());
  gpuFactory() = std::move(factory);
}

bool gpuGemmBuilt() {
  const std::lock_guard<std::mutex> lock(registryMutex());
  return static_cast<bool>(gpuFactory());
}

std::unique_ptr<WeightGemm> makeWeightGemm(const std::string& choice, const DecoderModel& model,
                                           const GpuGemmRequest& request, std::string* note) {
  auto say = [note](const std::string& text) {
    if (note != nullptr) *note = text;
  };
  GpuGemmFactory factory;
  {
    const std::lock_guard<std::mutex> lock(registryMutex());
    factory = gpuFactory();
  }
  if (choice == "cpu") {
    auto cpu = makeCpuWeightGemm();
    say("model pass: " + cpu->name());
    return cpu;
  }
  if (choice == "cuda") {
    if (!factory) throw Error(ErrorKind::Resource, "", "backend", "this build has no cuBLAS model pass");
    auto gpu = factory(model, request);
    say("model pass: " + gpu->name());
    return gpu;
  }
  if (choice != "auto") {
    throw Error(ErrorKind::BadInput, "", "backend",
                "unknown backend '" + choice + "' (expected cpu, cuda or auto)");
  }
  std::string why = "this build has no cuBLAS model pass";
  if (factory) {
    try {
      auto gpu = factory(model, request);
      say("model pass: " + gpu->name() + " (auto)");
      return gpu;
    } catch (const Error& e) {  // any failure of the device: the CPU still gives the answer
      why = e.problem();
    }
  }
  auto cpu = makeCpuWeightGemm();
  say("model pass: " + cpu->name() + " (auto; no GPU: " + why + ")");
  return cpu;
}

}  // namespace kvq
