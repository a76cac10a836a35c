// Internal: causal grouped-query attention of one sequence, in blocks of queries.
//
// For query head h (key/value head h / (H_q / H_kv)) and query block [i0, i1): scores
// S = Q K[0:i1]^T / sqrt(D) (one GEMM), the causal mask, a row softmax (max-shifted, float32),
// then O = P V[0:i1] (one GEMM). The (head, block) tasks run over the OpenMP threads; the GEMMs
// inside are single-threaded. Memory: one [block, T] score buffer per thread.
//
// KIVI's full-precision recent window (docs/model.md): with window R > 0 the caller also gives
// the full-precision keys/values, and query t sees as KIVI's decoding does after appending
// token t: key j at full precision iff j >= floor((t+1)/R)*R (keys are quantized R tokens at a
// time), value j at full precision iff t - j < R (values leave the window one at a time); the
// rest quantized.
#pragma once

#include <cstdint>

#include "model/gemm.h"

namespace kvq::model {

struct AttentionInput {
  int64_t tokens = 0;
  int qHeads = 0, kvHeads = 0, headDim = 0;
  const float* q = nullptr;  // [T, qStride], head h at column h*D (post-RoPE)
  int64_t qStride = 0;
  const float* k = nullptr;  // [T, H_kv*D] post-RoPE keys as attention sees them (quantized or not)
  const float* v = nullptr;  // [T, H_kv*D]
  // Window mode only: the full-precision keys (post-RoPE) and values, and R.
  const float* kRecent = nullptr;
  const float* vRecent = nullptr;
  int window = 0;
  bool slidingKeys = false;
};

// out: [T, H_q*D] row-major float32.
void causalAttention(GemmEngine engine, const AttentionInput& in, float* out);

}  // namespace kvq::model
