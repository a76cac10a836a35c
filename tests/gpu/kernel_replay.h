// Host replays of the CUDA kernels: plain C++ that performs each device thread's
// floating-point operations in the same order as the kernel (with the shared arithmetic
// of gpu/src/kernel_math.h), including the thread partition of the entries, the
// reductions across threads, the batching and the tile sums. The replay tests compare
// them with the CPU backend bit for bit: device-free evidence that the kernels compute
// the CPU's results. Each replay can also run with a deliberate defect, to show that the
// parity tests' data tell a defective kernel from the right one.
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/rvq/codebooks.h"
#include "parity_cases.h"

namespace kvq::replay {

using EncodeResult = parity::Encoded;

// Defects of the exact kernel's arithmetic.
enum class Defect {
  None,
  NormAddedLast,        // accumulator starts at 0, |c|^2 added after the dot product
  ReversedChannels,     // channels accumulated from g-1 down to 0
  SeparateMultiplyAdd,  // acc + m*c rounded twice instead of one fma
  TiesToHighest,        // equal distances keep the highest index
  ResidualFromSum,      // r_k = x - (c_1 + ... + c_k) instead of subtracting stage by stage
  ErrorPerBatch,        // depth error summed per batch, then the batches added
};

// greedy_encode.cu (exact): tiles of 128 vectors, thread (ty, tx) owning entries 4tx..4tx+3
// of each 64-entry chunk, strict < per thread, (distance, index) shuffle reduction over
// the 16 lanes, fp32 residual updates, double energies and 256-vector tile sums over
// batches of chunkVectors (a multiple of 256).
EncodeResult replayExactEncode(const float* x, int64_t n, const Codebooks& books, int64_t chunkVectors,
                               Defect defect = Defect::None);

// How the replay models the tensor cores' fp32 accumulation of TF32 products (the real
// order and rounding are not documented).
enum class MmaModel {
  Nearest,    // per 8-channel step: exact sum of products and accumulator, rounded to nearest
  Truncate,   // the same rounded toward zero
  WorstCase,  // exact sum, then moved by the full accumulation error the bound allows,
              // up for even entries and down for odd ones
};

enum class TcDefect {
  None,
  NoRerank,       // take the highest approximate score, no exact re-rank
  ZeroWindow,     // re-rank only the entries tied with the highest score
  IgnoreDropped,  // never send a vector to the exact search when a thread's list is full
};

struct TcStats {
  int64_t decisions = 0;             // (vector, stage) pairs
  int64_t fallbacks = 0;             // of them, searched exactly over every entry
  int64_t reranked = 0;              // candidates re-ranked with the exact distance
  double worstErrorOverBound = 0.0;  // max |A - D| / B over every (vector, entry) seen (measureBound)
};

// greedy_encode_tc.cu: TF32 candidates per quad thread (TopScores over the entries
// 8j + 2 tig + {0, 1} of each chunk), threshold, exact re-rank, exact search fallback.
// measureBound: also evaluates |A - D| / B for every entry (slower).
EncodeResult replayTensorCoreEncode(const float* x, int64_t n, const Codebooks& books, MmaModel model,
                                    TcStats* stats, bool measureBound = false,
                                    TcDefect defect = TcDefect::None);

// entry_stats.cu: per batch of chunkVectors, vectors grouped by code in vector order (a
// stable sort), each entry's count and sums continued from their current values.
// restartPerBatch: the defect of summing each batch from zero and adding the batch sums.
//   x: [n, g]; codes: [n]; counts: [C] in/out; sums: [C, g] in/out
void replayAccumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                      double* sums, int64_t chunkVectors, bool restartPerBatch = false);

// entry_stats.cu's EMA update with kernel_math.h's operations; fusedMultiplyAdd: the
// defect of letting the compiler fuse decay * N + (1 - decay) * n into an FMA.
void replayEmaUpdate(double* emaCount, double* emaSum, float* codebook, const double* batchCount,
                     const double* batchSum, int C, int g, double decay, double eps,
                     bool fusedMultiplyAdd = false);

}  // namespace kvq::replay
