#include "kvq/model/decoder_pass.h"

#include <cmath>
#include <cstring>

#include "model/attention.h"
#include "model/fast_exp.h"
#include "model/gemm.h"

namespace kvq {

namespace {

model::GemmEngine engine() {
  return model::currentGemmEngine();
}

// Copies columns [col, col + width) of src [rows, stride] into dst [rows, width].
void copyColumns(const float* src, int64_t rows, int64_t stride, int64_t col, int64_t width, float* dst) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * width, src + r * stride + col, static_cast<size_t>(width) * sizeof(float));
  }
}

void addBias(float* x, int64_t rows, int64_t n, const std::vector<float>& bias) {
  if (bias.empty()) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < n; ++i) x[r * n + i] += bias[static_cast<size_t>(i)];
  }
}

}  // namespace

void rmsNormRows(const float* x, int64_t rows, int n, const float* weight, double eps, float* out) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const double scale = 1.0 / std::sqrt(ss / n + eps);
    float* o = out + r * n;
    for (int i = 0; i < n; ++i) o[i] = static_cast<float>(xr[i] * scale) * weight[i];
  }
}

DecoderPass::DecoderPass(const DecoderModel& model, WeightGemm* gemm)
    : m_model(model),
      m_ownGemm(gemm == nullptr ? makeCpuWeightGemm() : nullptr),
      m_gemm(gemm == nullptr ? m_ownGemm.get() : gemm),
      m_invFreq(ropeInverseFrequencies(model.config.rope)) {}

void DecoderPass::embed(const int32_t* tokens, int64_t n, float* x) const {
  const int h = m_model.config.hidden;
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(x + t * h, m_model.embedding.data() + static_cast<int64_t>(tokens[t]) * h,
                static_cast<size_t>(h) * sizeof(float));
  }
}

void DecoderPass::attentionBlock(int layer, float* x, int64_t tokens, KvCacheHook* hook) {
  const ModelConfig& c = m_model.config;
  const LayerWeights& w = m_model.layers[static_cast<size_t>(layer)];
  const int64_t qkvRows = c.qkvRows(), qWidth = static_cast<int64_t>(c.numQHeads) * c.headDim;
  const int64_t kvWidth = static_cast<int64_t>(c.numKvHeads) * c.headDim;
  m_norm.resize(static_cast<size_t>(tokens * c.hidden));
  m_qkv.resize(static_cast<size_t>(tokens * qkvRows));
  rmsNormRows(x, tokens, c.hidden, w.attnNorm.data(), c.rmsEps, m_norm.data());
  m_gemm->multiplyABt(tokens, qkvRows, c.hidden, m_norm.data(), c.hidden, w.wqkv.data(), 0.0f, m_qkv.data(),
                      qkvRows);
  addBias(m_qkv.data(), tokens, qkvRows, w.bqkv);
  m_k.resize(static_cast<size_t>(tokens * kvWidth));
  m_v.resize(m_k.size());
  copyColumns(m_qkv.data(), tokens, qkvRows, qWidth, kvWidth, m_k.data());
  copyColumns(m_qkv.data(), tokens, qkvRows, qWidth + kvWidth, kvWidth, m_v.data());
  const int window = hook != nullptr ? hook->recentWindow(layer) : 0;
  if (window > 0) {
    m_kOrig = m_k;
    m_vOrig = m_v;
  }
  if (hook != nullptr) hook->apply(layer, tokens, m_k.data(), m_v.data());
  applyRope(m_qkv.data(), tokens, c.numQHeads, c.headDim, qkvRows, 0, m_invFreq);
  applyRope(m_k.data(), tokens, c.numKvHeads, c.headDim, kvWidth, 0, m_invFreq);
  if (window > 0) applyRope(m_kOrig.data(), tokens, c.numKvHeads, c.headDim, kvWidth, 0, m_invFreq);
  model::AttentionInput in;
  in.tokens = tokens;
  in.qHeads = c.numQHeads;
  in.kvHeads = c.numKvHeads;
  in.headDim = c.headDim;
  in.q = m_qkv.data();
  in.qStride = qkvRows;
  in.k = m_k.data();
  in.v = m_v.data();
  if (window > 0) {
    in.kRecent = m_kOrig.data();
    in.vRecent = m_vOrig.data();
    in.window = window;
    in.slidingKeys = hook->slidingKeyWindow(layer);
  }
  m_attn.resize(static_cast<size_t>(tokens * qWidth));
  model::causalAttention(engine(), in, m_attn.data());
  m_gemm->multiplyABt(tokens, c.hidden, qWidth, m_attn.data(), qWidth, w.wo.data(), 1.0f, x, c.hidden);
  addBias(x, tokens, c.hidden, w.bo);
}

void DecoderPass::mlpBlock(int layer, float* x, int64_t tokens) {
  const ModelConfig& c = m_model.config;
  const LayerWeights& w = m_model.layers[static_cast<size_t>(layer)];
  const int64_t f = c.ffn;
  rmsNormRows(x, tokens, c.hidden, w.ffnNorm.data(), c.rmsEps, m_norm.data());
  m_gateUp.resize(static_cast<size_t>(tokens * 2 * f));
  m_gemm->multiplyABt(tokens, 2 * f, c.hidden, m_norm.data(), c.hidden, w.wGateUp.data(), 0.0f,
                      m_gateUp.data(), 2 * f);
  m_act.resize(static_cast<size_t>(tokens * f));
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    const float* g = m_gateUp.data() + t * 2 * f;
    const float* u = g + f;
    float* a = m_act.data() + t * f;
    for (int64_t i = 0; i < f; ++i) a[i] = -g[i];
    model::expShiftedSum(a, f, 0.0f, a);  // a = exp(-g)
    for (int64_t i = 0; i < f; ++i) a[i] = g[i] / (1.0f + a[i]) * u[i];
  }
  m_gemm->multiplyABt(tokens, c.hidden, f, m_act.data(), f, w.wDown.data(), 1.0f, x, c.hidden);
}

void DecoderPass::runLayers(float* x, int64_t tokens, int begin, int end, KvCacheHook* hook,
                            const TaskControl* control) {
  for (int layer = begin; layer < end; ++layer) {
    attentionBlock(layer, x, tokens, hook);
    mlpBlock(layer, x, tokens);
    checkCancel(control);
  }
}

void DecoderPass::finalNorm(float* x, int64_t n) const {
  rmsNormRows(x, n, m_model.config.hidden, m_model.outputNorm.data(), m_model.config.rmsEps, x);
}

void DecoderPass::logits(const float* h, int64_t rows, float* out) const {
  const ModelConfig& c = m_model.config;
  m_gemm->multiplyABt(rows, c.vocab, c.hidden, h, c.hidden, m_model.head().data(), 0.0f, out, c.vocab);
}

std::vector<float> sequenceLogits(const DecoderModel& model, const std::vector<int32_t>& tokens,
                                  WeightGemm* gemm, KvCacheHook* hook) {
  DecoderPass pass(model, gemm);
  const auto n = static_cast<int64_t>(tokens.size());
  std::vector<float> x(static_cast<size_t>(n * model.config.hidden));
  pass.embed(tokens.data(), n, x.data());
  pass.runLayers(x.data(), n, 0, model.config.numLayers, hook, nullptr);
  pass.finalNorm(x.data(), n);
  std::vector<float> out(static_cast<size_t>(n * model.config.vocab));
  pass.logits(x.data(), n, out.data());
  return out;
}

}  // namespace kvq
