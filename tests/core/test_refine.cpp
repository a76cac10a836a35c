// Joint refinement of all stages: a hand-worked least-squares step, and the objective never rising.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/refine.h"
#include "kvq/rvq/trainer.h"

namespace kvq {
namespace {

TEST(Refine, OneRoundIsLeastSquaresOverBothStages) {
  // g = 1, K = 2, C = 2. Stage 1 {0, 10}, stage 2 {-1, 1}; x = {0, 2, 9, 13}. Greedy codes:
  //   x=0: stage 1 entry 0, residual 0, stage 2 tie at distance 1 -> lowest index, -1.
  //   x=2: 0, residual 2 -> 1.   x=9: 10, residual -1 -> -1.   x=13: 10, residual 3 -> 1.
  // E before = 1 + 1 + 0 + 4 = 6.
  // Stage 1 update: entry 0 <- mean(0 - (-1), 2 - 1) = 1; entry 1 <- mean(9 + 1, 13 - 1) = 11.
  //   errors: 0-(1-1)=0, 2-(1+1)=0, 9-(11-1)=-1, 13-(11+1)=1 -> E = 2.
  // Stage 2 update: entry 0 (x=0, x=9) <- mean(0 - 1, 9 - 11) = -1.5; entry 1 (x=2, x=13) <-
  //   mean(2 - 1, 13 - 11) = 1.5. Errors 0.5, -0.5, -0.5, 0.5 -> E = 1.
  const std::vector<float> x{0, 2, 9, 13};
  Codebooks books(2, 2, 1);
  books.data = {0, 10, -1, 1};
  auto backend = makeCpuBackend();
  const RefineStats st = refineRvq(x.data(), 4, books, 1, 1, *backend);
  ASSERT_EQ(st.objective.size(), 2u);
  EXPECT_DOUBLE_EQ(st.objective[0], 6.0);
  EXPECT_DOUBLE_EQ(st.objective[1], 1.0);
  EXPECT_EQ(books.data, (std::vector<float>{1, 11, -1.5f, 1.5f}));
  const std::vector<int32_t> codes{0, 0, 0, 1, 1, 0, 1, 1};
  EXPECT_DOUBLE_EQ(rvqObjective(x.data(), 4, books, codes.data()), 1.0);
}

std::vector<float> gaussianMix(int64_t n, int g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> centres(static_cast<size_t>(12) * g);
  for (float& c : centres) c = 2 * nd(rng);
  std::vector<float> x(static_cast<size_t>(n) * g);
  for (int64_t i = 0; i < n; ++i) {
    const auto m = static_cast<size_t>(i % 12);
    for (int d = 0; d < g; ++d) x[static_cast<size_t>(i * g + d)] = centres[m * g + d] + nd(rng);
  }
  return x;
}

TEST(Refine, NeverRaisesTheTrainingObjective) {
  const int g = 8;
  const int64_t n = 4000;
  const std::vector<float> x = gaussianMix(n, g, 3);
  auto backend = makeCpuBackend();
  for (int beam : {1, 4}) {
    RvqConfig config;
    config.codebookSize = 32;
    config.depth = 4;
    config.groupSize = g;
    config.kmeansIterations = 3;
    config.emaSteps = 5;
    config.batchSize = 512;
    Codebooks books = trainRvq(x.data(), n, g, config, *backend);
    const RefineStats st = refineRvq(x.data(), n, books, 4, beam, *backend);
    ASSERT_EQ(st.objective.size(), 5u);
    for (size_t r = 1; r < st.objective.size(); ++r) {
      EXPECT_LE(st.objective[r], st.objective[r - 1]) << "beam " << beam << " round " << r;
    }
    // And it pays on this data (a guard against a refinement that never moves anything).
    EXPECT_LT(st.objective.back(), 0.97 * st.objective.front()) << "beam " << beam;
  }
}

TEST(Refine, RefusesBadSettings) {
  Codebooks books(1, 2, 1);
  const std::vector<float> x{0, 1};
  auto backend = makeCpuBackend();
  EXPECT_THROW(refineRvq(x.data(), 2, books, -1, 1, *backend), Error);
  EXPECT_THROW(refineRvq(x.data(), 2, books, 1, 0, *backend), Error);
}

}  // namespace
}  // namespace kvq
