// The decoder forward pass of one sequence, float32 (docs/model.md).
//
// Per layer: RMSNorm (mean of squares in double), one GEMM for q/k/v (+ biases), the key/value
// hook (the quantized cache replaces the pre-RoPE keys and the values here), RoPE on queries and
// keys, causal grouped-query attention, the output projection added to the residual stream,
// RMSNorm, one GEMM for gate/up, SiLU(gate) * up, the down projection added to the residual.
// After the last layer: RMSNorm and the output head (tied to the embedding or separate).
// The products with weight matrices run through a WeightGemm (weight_gemm.h: OpenBLAS split over
// the OpenMP threads, or cuBLAS when gpu/ provides it); attention's products stay on the CPU.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/weight_gemm.h"

namespace kvq {

// What the pass does with each layer's keys and values before attention.
class KvCacheHook {
 public:
  virtual ~KvCacheHook() = default;
  // keys, values: [tokens, H_kv, D] row-major float32 of one sequence (positions 0..tokens-1),
  // keys before RoPE in the Hugging Face layout. Modify them in place to replace the cache.
  virtual void apply(int layer, int64_t tokens, float* keys, float* values) = 0;
  // > 0: attention keeps KIVI's full-precision recent window of this many tokens, reading the
  // keys/values as they were before apply() for it (attention.h states the rule).
  virtual int recentWindow(int /*layer*/) const { return 0; }
  // true: the window slides one token at a time for keys too (query t reads keys t-R+1..t exact,
  // an RVQ cache encodes a token when it leaves the window); false: KIVI's key groups of R.
  virtual bool slidingKeyWindow(int /*layer*/) const { return false; }
};

class DecoderPass {
 public:
  // gemm: the engine of the weight products, outliving the pass; nullptr = the CPU's.
  explicit DecoderPass(const DecoderModel& model, WeightGemm* gemm = nullptr);

  const WeightGemm& gemm() const { return *m_gemm; }

  const DecoderModel& model() const { return m_model; }

  // x: [n, hidden] = the embedding rows of tokens: [n] ids in 0..vocab-1 (checked by the caller).
  void embed(const int32_t* tokens, int64_t n, float* x) const;

  // Advances the residual stream of one sequence through layers [begin, end).
  //   x: [tokens, hidden] row-major float32, in/out (at the input of layer `begin`)
  // hook may be nullptr. Checks control for cancellation after every layer.
  void runLayers(float* x, int64_t tokens, int begin, int end, KvCacheHook* hook, const TaskControl* control);

  // The final RMSNorm, in place. x: [n, hidden]
  void finalNorm(float* x, int64_t n) const;

  // logits: [rows, vocab] = h [rows, hidden] (after finalNorm) times the output head.
  void logits(const float* h, int64_t rows, float* out) const;

 private:
  void attentionBlock(int layer, float* x, int64_t tokens, KvCacheHook* hook);
  void mlpBlock(int layer, float* x, int64_t tokens);

  const DecoderModel& m_model;
  std::unique_ptr<WeightGemm> m_ownGemm;  // the CPU engine when none was given
  WeightGemm* m_gemm;
  std::vector<float> m_norm, m_qkv, m_k, m_v, m_kOrig, m_vOrig, m_attn, m_gateUp, m_act;
  std::vector<double> m_invFreq;
};

// Logits of one sequence: [tokens, vocab] row-major float32 (tests, probes).
// gemm: the engine of the weight products (nullptr = the CPU's); hook: applied to every layer's
// keys and values (nullptr = the reference, an exact cache).
std::vector<float> sequenceLogits(const DecoderModel& model, const std::vector<int32_t>& tokens,
                                  WeightGemm* gemm = nullptr, KvCacheHook* hook = nullptr);

// RMSNorm of rows: out[r] = float(x[r] / sqrt(mean(x[r]^2) + eps)) * weight, the mean in double.
//   x, out: [rows, n]; weight: [n]
void rmsNormRows(const float* x, int64_t rows, int n, const float* weight, double eps, float* out);

}  // namespace kvq
