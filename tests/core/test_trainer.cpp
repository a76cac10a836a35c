#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/trainer.h"

namespace kvq {
namespace {

// n vectors of g floats from a mixture of `modes` Gaussians (random centres, sigma 0.3).
std::vector<float> mixture(int64_t n, int g, int modes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> centres(static_cast<size_t>(modes) * g);
  for (float& c : centres) c = nd(rng);
  std::uniform_int_distribution<int> pick(0, modes - 1);
  std::vector<float> x(static_cast<size_t>(n) * g);
  for (int64_t i = 0; i < n; ++i) {
    const int m = pick(rng);
    for (int d = 0; d < g; ++d) x[i * g + d] = centres[m * g + d] + 0.3f * nd(rng);
  }
  return x;
}

RvqConfig smallConfig(int C, int K, int g) {
  RvqConfig c;
  c.codebookSize = C;
  c.depth = K;
  c.groupSize = g;
  c.trainSample = 3000;
  c.kmeansIterations = 4;
  c.emaSteps = 10;
  c.batchSize = 512;
  c.seed = 42;
  return c;
}

double relativeError(const std::vector<float>& x, int64_t n, const Codebooks& books, int stages) {
  auto backend = makeCpuBackend();
  std::vector<int32_t> codes(static_cast<size_t>(n) * books.depth);
  backend->encodeGreedy(x.data(), n, books, codes.data(), nullptr, nullptr);
  std::vector<float> rec(x.size());
  decodeRvq(codes.data(), n, books, stages, rec.data());
  double err = 0, total = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    err += (x[i] - rec[i]) * static_cast<double>(x[i] - rec[i]);
    total += static_cast<double>(x[i]) * x[i];
  }
  return err / total;
}

TEST(Trainer, KmeansFindsWellSeparatedClusters) {
  // Four tight clusters at (+-10, +-10): k-means++ puts one centre in each, Lloyd
  // moves it to the cluster mean.
  const int g = 2, C = 4;
  const float truth[4][2] = {{10, 10}, {-10, 10}, {10, -10}, {-10, -10}};
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.1f);
  std::vector<float> x;
  double mean[4][2] = {};
  for (int i = 0; i < 400; ++i) {
    const int m = i % 4;
    for (int d = 0; d < g; ++d) {
      x.push_back(truth[m][d] + nd(rng));
      mean[m][d] += x.back() / 100.0;
    }
  }
  RvqConfig config = smallConfig(C, 1, g);
  config.init = KMeansInit::PlusPlus;
  config.emaSteps = 0;
  config.kmeansIterations = 5;
  auto backend = makeCpuBackend();
  TrainStats stats;
  const Codebooks books = trainRvq(x.data(), 400, g, config, *backend, nullptr, &stats);
  std::vector<bool> found(4, false);
  for (int i = 0; i < C; ++i) {
    for (int m = 0; m < 4; ++m) {
      if (std::abs(books.entry(0, i)[0] - mean[m][0]) < 1e-4 &&
          std::abs(books.entry(0, i)[1] - mean[m][1]) < 1e-4) {
        found[m] = true;
      }
    }
  }
  EXPECT_EQ(std::count(found.begin(), found.end(), true), 4);
  EXPECT_LT(stats.stageErrorAfterInit[0], 1e-3);
}

TEST(Trainer, DeterministicForAnyThreadCount) {
  const int g = 8;
  const int64_t n = 5000;  // > trainSample: exercises subsampling
  const std::vector<float> x = mixture(n, g, 20, 1);
  RvqConfig config = smallConfig(32, 3, g);
  config.init = KMeansInit::PlusPlus;
  config.deadThreshold = 0.9;  // reseeds often: exercises that path too
  config.lloydIterations = 1;
  const int saved = omp_get_max_threads();
  auto backend = makeCpuBackend();
  omp_set_num_threads(1);
  TrainStats s1;
  const Codebooks one = trainRvq(x.data(), n, g, config, *backend, nullptr, &s1);
  omp_set_num_threads(2);
  TrainStats s2;
  const Codebooks two = trainRvq(x.data(), n, g, config, *backend, nullptr, &s2);
  omp_set_num_threads(saved);
  EXPECT_EQ(one.data, two.data);
  EXPECT_EQ(s1.stageErrorAfterEma, s2.stageErrorAfterEma);
  EXPECT_EQ(s1.reseeded, s2.reseeded);
  EXPECT_GT(s1.reseeded[0] + s1.reseeded[1] + s1.reseeded[2], 0);
  // Another seed gives other codebooks.
  config.seed = 43;
  const Codebooks other = trainRvq(x.data(), n, g, config, *backend);
  EXPECT_NE(one.data, other.data);
}

TEST(Trainer, ProgressiveInitIsDeterministicAndSound) {
  const int g = 8;
  const int64_t n = 3000;
  const std::vector<float> x = mixture(n, g, 30, 9);
  RvqConfig config = smallConfig(32, 2, g);
  config.emaSteps = 0;
  config.kmeansIterations = 5;
  const int saved = omp_get_max_threads();
  auto backend = makeCpuBackend();
  config.init = KMeansInit::Progressive;
  omp_set_num_threads(1);
  TrainStats s1;
  const Codebooks one = trainRvq(x.data(), n, g, config, *backend, nullptr, &s1);
  omp_set_num_threads(2);
  const Codebooks two = trainRvq(x.data(), n, g, config, *backend);
  omp_set_num_threads(saved);
  EXPECT_EQ(one.data, two.data);
  // As good as plain k-means from random points, give or take.
  config.init = KMeansInit::RandomPoints;
  TrainStats s2;
  trainRvq(x.data(), n, g, config, *backend, nullptr, &s2);
  EXPECT_LT(s1.stageErrorAfterEma[1], 1.2 * s2.stageErrorAfterEma[1]);
  EXPECT_LT(s1.stageErrorAfterEma[1], s1.stageErrorAfterEma[0]);
}

TEST(Trainer, ErrorFallsWithDepthAndCodebookSize) {
  const int g = 8;
  const int64_t n = 3000;
  const std::vector<float> train = mixture(n, g, 50, 2);
  const std::vector<float> test = mixture(1000, g, 50, 2);  // same mixture (same seed), other draws
  auto backend = makeCpuBackend();
  TrainStats stats;
  const Codebooks small = trainRvq(train.data(), n, g, smallConfig(16, 4, g), *backend, nullptr, &stats);
  for (int k = 1; k < 4; ++k) {
    EXPECT_LT(stats.stageErrorAfterEma[k], stats.stageErrorAfterEma[k - 1]);
    EXPECT_LT(relativeError(train, n, small, k + 1), relativeError(train, n, small, k));
  }
  EXPECT_GT(stats.stageErrorAfterInit[0], 0.0);
  EXPECT_NEAR(relativeError(train, n, small, 4), stats.stageErrorAfterEma[3], 1e-5);
  const Codebooks large = trainRvq(train.data(), n, g, smallConfig(128, 4, g), *backend);
  EXPECT_LT(relativeError(test, 1000, large, 4), relativeError(test, 1000, small, 4));
  EXPECT_LT(relativeError(test, 1000, large, 1), relativeError(test, 1000, small, 1));
}

TEST(Trainer, EmaImprovesOnKmeansInit) {
  const int g = 8;
  const int64_t n = 3000;
  const std::vector<float> x = mixture(n, g, 40, 5);
  RvqConfig config = smallConfig(64, 1, g);
  config.kmeansIterations = 1;
  config.emaSteps = 40;
  auto backend = makeCpuBackend();
  TrainStats stats;
  trainRvq(x.data(), n, g, config, *backend, nullptr, &stats);
  EXPECT_LT(stats.stageErrorAfterEma[0], stats.stageErrorAfterInit[0]);
}

TEST(Trainer, ProgressAndCancellation) {
  const int g = 4;
  const std::vector<float> x = mixture(500, g, 5, 3);
  RvqConfig config = smallConfig(8, 2, g);
  auto backend = makeCpuBackend();
  std::vector<double> fractions;
  TaskControl control;
  control.onProgress = [&](double f, const std::string&) { fractions.push_back(f); };
  trainRvq(x.data(), 500, g, config, *backend, &control);
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);

  std::atomic<bool> cancel{false};
  TaskControl cancelling;
  cancelling.cancel = &cancel;
  cancelling.onProgress = [&](double f, const std::string&) {
    if (f > 0.3) cancel = true;
  };
  try {
    trainRvq(x.data(), 500, g, config, *backend, &cancelling);
    FAIL() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cancelled);
  }
}

// Iteration counts near INT_MAX: their int sum wrapped (here to 0), and the first
// progress report said 1.0; summed in int64 it is a tiny fraction.
TEST(Trainer, HugeIterationCountsGiveSmallProgress) {
  const int g = 4;
  const std::vector<float> x = mixture(500, g, 5, 3);
  RvqConfig config = smallConfig(8, 2, g);
  config.kmeansIterations = std::numeric_limits<int>::max();
  config.emaSteps = std::numeric_limits<int>::max();  // int sum + 2 wrapped to 0: "done" at once
  auto backend = makeCpuBackend();
  std::atomic<bool> cancel{false};
  double first = -1.0;
  TaskControl control;
  control.cancel = &cancel;
  control.onProgress = [&](double f, const std::string&) {
    if (first < 0.0) first = f;
    cancel = true;
  };
  EXPECT_THROW(trainRvq(x.data(), 500, g, config, *backend, &control), Error);
  EXPECT_GT(first, 0.0);
  EXPECT_LT(first, 1e-9);
}

TEST(Trainer, TooFewVectorsIsBadInput) {
  const std::vector<float> x = mixture(10, 4, 2, 3);
  auto backend = makeCpuBackend();
  try {
    trainRvq(x.data(), 10, 4, smallConfig(16, 1, 4), *backend);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.where(), "codebook_size");
  }
}

}  // namespace
}  // namespace kvq
