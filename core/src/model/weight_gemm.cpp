#include "kvq/model/weight_gemm.h"

#include <set>

#include "base/factory_slot.h"
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

FactorySlot<GpuGemmFactory>& gpuFactory() {
  static FactorySlot<GpuGemmFactory> slot;
  return slot;
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
  gpuFactory().set(std::move(factory));
}

bool gpuGemmBuilt() {
  return static_cast<bool>(gpuFactory().get());
}

std::unique_ptr<WeightGemm> makeWeightGemm(const std::string& choice, const DecoderModel& model,
                                           const GpuGemmRequest& request, std::string* note) {
  const GpuGemmFactory factory = gpuFactory().get();
  return chooseEngine<WeightGemm>(
      choice, "model pass", static_cast<bool>(factory), "this build has no cuBLAS model pass",
      makeCpuWeightGemm, [&](bool) { return factory(model, request); }, note);
}

}  // namespace kvq
