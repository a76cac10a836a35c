// Per-channel weights of the quantization error (beyond the paper; docs/metrics.md,
// "Query-aware keys").
//
// A key's error δ = k − k̃ reaches the model only through the attention logits q·δ, so the error
// that matters is E[(q·δ)²] = δᵀ E[q qᵀ] δ over the queries that read the key, not ||δ||². Its
// diagonal approximation is Σ_c E[q_c²] δ_c²: training and encoding the keys scaled channel-wise
// by w_c = sqrt(E[q_c²]) (kvq::scaleAndGroup's weights) make plain squared error equal it. With
// pre-RoPE keys and queries the query that meets a key is rotated by their relative position, so
// each rotary pair's two channels get the mean of their second moments (the diagonal of
// E[q qᵀ] averaged over rotation angles).
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/model/rope.h"

namespace kvq {

// Accumulates sum over query rows and heads of q_c² (double), per channel.
class QuerySecondMoments {
 public:
  explicit QuerySecondMoments(int headDim) : m_sums(static_cast<size_t>(headDim), 0.0) {}
  // q: [n, D] row-major float32 (query-head vectors).
  void add(const float* q, int64_t n);
  int64_t count() const { return m_count; }
  // w: [D], w_c = sqrt(E[q_c²]) averaged over each rotary pair of `layout` among the first
  // ropeDim channels (channels >= ropeDim keep their own), floored at 1e-3 of the largest and
  // normalised to mean w_c² = 1 (the weights' overall scale cancels in the std scaling).
  // Throws Error(Internal) when no query was added.
  std::vector<float> weights(RopeLayout layout, int ropeDim) const;

 private:
  std::vector<double> m_sums;
  int64_t m_count = 0;
};

// The key weights of one layer from every query row of a dump (all query heads: a kv head's
// keys are read by its whole GQA group, and one quantizer serves every head). Throws
// Error(BadInput) naming the dump when it stores no queries for the layer.
std::vector<float> queryKeyWeights(const DumpReader& reader, int layer, const TaskControl* control = nullptr);

// The same from the query rows of several dumps of one model together (training on several
// dumps, StudyOptions::alsoTrainOn): their second moments pooled, the rotary layout the first's.
std::vector<float> queryKeyWeights(const std::vector<const DumpReader*>& readers, int layer,
                                   const TaskControl* control = nullptr);

}  // namespace kvq
