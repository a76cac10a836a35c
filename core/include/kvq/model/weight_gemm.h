// The weight products of the model pass, y = x W^T, on the CPU or on a GPU (docs/model.md).
//
// Every product with a weight matrix (q/k/v, output projection, gate/up, down, the head) goes
// through a WeightGemm; attention's score and value products stay on the CPU (model/gemm.h).
// core cannot include CUDA headers, so gpu/ registers a factory here at start-up
// (kvq::gpu::registerCublasModelGemm(), called by the CLI's and the GUI's main()), as it does
// for the RVQ backend (kvq/rvq/backend_registry.h). Without a registered factory "cuda" is
// refused and "auto" is the CPU.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvq/model/decoder_model.h"

namespace kvq {

class WeightGemm {
 public:
  virtual ~WeightGemm() = default;
  // One line naming the engine, e.g. "CPU (openblas)" or "cuBLAS fp32 on NVIDIA H200".
  virtual std::string name() const = 0;
  // c = a w^T + beta c, row-major float32.
  //   a: [m, k] (row stride lda); w: [n, k], one of the model's weight matrices as
  //   modelWeightMatrices lists them (row stride k); c: [m, n] (row stride ldc).
  // A GPU engine holds a device copy of every weight matrix, uploaded once when it is made, and
  // throws Error(Internal) for a w that is not one of them.
  virtual void multiplyABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w,
                           float beta, float* c, int64_t ldc) = 0;
};

// A weight matrix the pass multiplies with: data [rows, cols] row-major float32.
struct WeightMatrix {
  const float* data = nullptr;
  int64_t rows = 0, cols = 0;
};

// Every weight matrix of the model's products: per layer wqkv, wo, wGateUp, wDown, then the
// head (the embedding when tied), each once.
std::vector<WeightMatrix> modelWeightMatrices(const DecoderModel& model);

// The CPU engine: OpenBLAS (or Eigen with KVQ_GEMM=eigen) split over the OpenMP threads.
std::unique_ptr<WeightGemm> makeCpuWeightGemm();

// What makeWeightGemm asks of the GPU engine.
struct GpuGemmRequest {
  // TensorFloat-32 products (inputs rounded to a 10-bit mantissa): faster on tensor cores, but
  // the logits no longer keep the 1e-4 fidelity tolerance. Off unless the user asks (--tf32).
  bool allowTf32 = false;
};

// Creates the GPU engine for `model` (uploading its weights) or throws Error(Resource) saying
// why it cannot (no device, not enough device memory).
using GpuGemmFactory = std::function<std::unique_ptr<WeightGemm>(const DecoderModel&, const GpuGemmRequest&)>;
void registerGpuGemmFactory(GpuGemmFactory factory);
bool gpuGemmBuilt();

// choice: "cpu" | "cuda" | "auto" (the GPU when a device is present and holds the weights, else
// the CPU). note (nullable) receives one line saying which engine runs the pass and, for auto,
// why not the GPU. Throws Error(BadInput) on an unknown name and Error(Resource) when "cuda"
// cannot be had.
std::unique_ptr<WeightGemm> makeWeightGemm(const std::string& choice, const DecoderModel& model,
                                           const GpuGemmRequest& request = {}, std::string* note = nullptr);

}  // namespace kvq
