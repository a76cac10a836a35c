// Joint refinement of every stage of a trained residual quantizer (beyond the paper).
//
// Stage-by-stage training fits stage k to the residuals the earlier stages leave and never
// revisits it; the codes that encoding then picks are not those it was fitted to. Refinement
// alternates two exact block minimisations of the training objective
//   E = sum_i || x_i - sum_k C_k[c_ik] ||^2   (the sample's squared reconstruction error):
//   1. codes: re-encode every vector (greedy, or beam search when beamWidth > 1) and keep its
//      new codes only when they lower its error;
//   2. entries, stage by stage (block coordinate descent = least squares over all stages):
//      every used entry of stage k moves to the mean of x_i - sum_{j != k} C_j[c_ij] over the
//      vectors that use it; unused entries stay. A stage whose update would raise E (it can
//      only by float rounding) is left as it was.
// So E never rises: objective[r + 1] <= objective[r] for every round r.
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"

namespace kvq {

struct RefineStats {
  std::vector<double> objective;  // [rounds + 1]: E before refining (greedy codes), then after each round
  int64_t codesChanged = 0;       // vectors whose codes a re-encoding improved, summed over rounds
};

// x: [n, g] row-major float32 training vectors (g = books.dim); books: [K, C, g] in/out.
// beamWidth: 1 = greedy re-encoding, > 1 = beam search with that width. Cancellation throws
// Error(Cancelled) between rounds and stages, leaving books at the last completed stage update.
RefineStats refineRvq(const float* x, int64_t n, Codebooks& books, int rounds, int beamWidth,
                      Backend& backend, const TaskControl* control = nullptr);

// E of given codes: codes [n, K] int32 -> sum over vectors of ||x_i - sum_k C_k[c_ik]||^2 (double).
double rvqObjective(const float* x, int64_t n, const Codebooks& books, const int32_t* codes);

}  // namespace kvq
