#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "every_isa.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/cpu_backend.h"
#include "rvq/cpu_kernels.h"  // internal: to check every ISA path

namespace kvq {
namespace {

std::vector<float> gaussian(size_t count, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(count);
  for (float& f : v) f = nd(rng);
  return v;
}

// The engine's reference search distance, written out plainly (cpu_kernels.h):
// |c|^2 - 2<x, c> accumulated in channel order with fused multiply-adds.
float referenceDistance(const float* x, const float* c, int g) {
  float norm = 0.0f;
  for (int d = 0; d < g; ++d) norm = std::fma(c[d], c[d], norm);
  float acc = norm;
  for (int d = 0; d < g; ++d) acc = std::fma(-2.0f * x[d], c[d], acc);
  return acc;
}

int32_t bruteForce(const float* x, const float* codebook, int C, int g) {
  int32_t best = 0;
  float bestD = referenceDistance(x, codebook, g);
  for (int i = 1; i < C; ++i) {
    const float d = referenceDistance(x, codebook + static_cast<size_t>(i) * g, g);
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

double exactDistance(const float* x, const float* c, int g) {
  double s = 0.0;
  for (int d = 0; d < g; ++d) s += (static_cast<double>(x[d]) - c[d]) * (static_cast<double>(x[d]) - c[d]);
  return s;
}

TEST(CpuKernels, EveryIsaMatchesBruteForceWithTies) {
  // C not a multiple of any block (padding), duplicated entries in different lanes
  // and blocks, and vectors equal to them: exact ties must resolve to the lowest index.
  const int C = 203, g = 8, rows = 64;
  std::vector<float> codebook = gaussian(static_cast<size_t>(C) * g, 1);
  for (int dup : {37, 70, 133, 202}) {
    std::copy(codebook.begin() + 5 * g, codebook.begin() + 6 * g, codebook.begin() + dup * g);
  }
  std::vector<float> x = gaussian(static_cast<size_t>(rows) * g, 2);
  for (int r = 0; r < 8; ++r)
    std::copy(codebook.begin() + 5 * g, codebook.begin() + 6 * g, x.begin() + r * g);
  std::vector<float> m(x.size());
  for (size_t i = 0; i < x.size(); ++i) m[i] = -2.0f * x[i];
  for (cpu::Isa isa : test::availableIsas()) {
    SCOPED_TRACE(cpu::isaName(isa));
    cpu::PackedCodebook cb;
    cb.pack(codebook.data(), C, g, isa);
    std::vector<int32_t> codes(rows);
    cpu::nearestRows(isa, m.data(), rows, cb, codes.data());
    for (int r = 0; r < rows; ++r) EXPECT_EQ(codes[r], bruteForce(&x[r * g], codebook.data(), C, g)) << r;
    for (int r = 0; r < 8; ++r) EXPECT_EQ(codes[r], 5);
    std::vector<float> dist(static_cast<size_t>(rows) * cb.padded);
    cpu::distanceRows(isa, m.data(), rows, cb, dist.data());
    for (int r = 0; r < rows; ++r) {
      for (int i = 0; i < C; ++i) {
        ASSERT_EQ(dist[static_cast<size_t>(r) * cb.padded + i],
                  referenceDistance(&x[r * g], &codebook[static_cast<size_t>(i) * g], g));
      }
    }
  }
}

TEST(CpuBackend, NearestMatchesBruteForceAndExactSearch) {
  const int C = 512, g = 32;
  const int64_t n = 3000;  // several tiles and a partial one
  const std::vector<float> codebook = gaussian(static_cast<size_t>(C) * g, 3);
  const std::vector<float> x = gaussian(static_cast<size_t>(n) * g, 4);
  auto backend = makeCpuBackend();
  std::vector<int32_t> codes(n);
  std::vector<float> dist(n);
  backend->nearest(x.data(), n, codebook.data(), C, g, codes.data(), dist.data());
  int64_t differFromExact = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = &x[i * g];
    ASSERT_EQ(codes[i], bruteForce(xi, codebook.data(), C, g)) << i;
    EXPECT_NEAR(dist[i], exactDistance(xi, &codebook[codes[i] * g], g), 1e-4 * dist[i]);
    // Against the argmin of |x - c|^2 in double: equal except at near-ties.
    int32_t exact = 0;
    double exactBest = exactDistance(xi, codebook.data(), g);
    for (int c = 1; c < C; ++c) {
      const double d = exactDistance(xi, &codebook[c * g], g);
      if (d < exactBest) {
        exactBest = d;
        exact = c;
      }
    }
    if (exact != codes[i]) {
      ++differFromExact;
      EXPECT_LT(exactDistance(xi, &codebook[codes[i] * g], g) - exactBest, 1e-5 * (exactBest + 1.0));
    }
  }
  EXPECT_LE(differFromExact, n / 1000);
}

// A plain stage loop: brute-force nearest, subtract, energy in double.
void naiveEncode(const std::vector<float>& x, int64_t n, const Codebooks& books, std::vector<int32_t>& codes,
                 std::vector<double>& depthError, std::vector<float>& residual) {
  const int K = books.depth, g = books.dim;
  codes.assign(static_cast<size_t>(n) * K, 0);
  depthError.assign(K, 0.0);
  residual = x;
  for (int64_t i = 0; i < n; ++i) {
    float* r = &residual[i * g];
    for (int k = 0; k < K; ++k) {
      const int32_t c = bruteForce(r, books.stage(k), books.size, g);
      codes[i * K + k] = c;
      double e = 0.0;
      for (int d = 0; d < g; ++d) {
        r[d] -= books.entry(k, c)[d];
        e += static_cast<double>(r[d]) * r[d];
      }
      depthError[k] += e;
    }
  }
}

Codebooks randomBooks(int K, int C, int g, uint32_t seed) {
  Codebooks books(K, C, g);
  for (int k = 0; k < K; ++k) {
    // Shrinking stages, like trained residual codebooks.
    const std::vector<float> v = gaussian(static_cast<size_t>(C) * g, seed + k, std::pow(0.6f, k));
    std::copy(v.begin(), v.end(), books.stage(k));
  }
  return books;
}

TEST(CpuBackend, GreedyMatchesNaiveStageLoop) {
  const int K = 4, C = 256, g = 16;
  const int64_t n = 1000;
  const Codebooks books = randomBooks(K, C, g, 10);
  const std::vector<float> x = gaussian(static_cast<size_t>(n) * g, 5);
  std::vector<int32_t> refCodes;
  std::vector<double> refErr;
  std::vector<float> refRes;
  naiveEncode(x, n, books, refCodes, refErr, refRes);

  auto backend = makeCpuBackend();
  std::vector<int32_t> codes(static_cast<size_t>(n) * K);
  std::vector<double> err(K, 0.0);
  std::vector<float> res(x.size());
  backend->encodeGreedy(x.data(), n, books, codes.data(), err.data(), res.data());
  EXPECT_EQ(codes, refCodes);
  EXPECT_EQ(res, refRes);
  for (int k = 0; k < K; ++k) EXPECT_NEAR(err[k], refErr[k], 1e-9 * refErr[k]);
  for (int k = 1; k < K; ++k) EXPECT_LT(err[k], err[k - 1]);
}

TEST(CpuBackend, BeamOneIsGreedyAndWiderBeamsAreBetter) {
  const int K = 4, C = 64, g = 8;
  const int64_t n = 700;
  const Codebooks books = randomBooks(K, C, g, 20);
  const std::vector<float> x = gaussian(static_cast<size_t>(n) * g, 6);
  auto backend = makeCpuBackend();
  std::vector<int32_t> greedy(static_cast<size_t>(n) * K), beam1(greedy.size()), beam4(greedy.size());
  std::vector<double> eg(K, 0.0), e1(K, 0.0), e4(K, 0.0);
  std::vector<float> rg(x.size()), r1(x.size()), r4(x.size());
  backend->encodeGreedy(x.data(), n, books, greedy.data(), eg.data(), rg.data());
  backend->encodeBeam(x.data(), n, books, 1, beam1.data(), e1.data(), r1.data());
  backend->encodeBeam(x.data(), n, books, 4, beam4.data(), e4.data(), r4.data());
  EXPECT_EQ(beam1, greedy);
  EXPECT_EQ(r1, rg);
  for (int k = 0; k < K; ++k) EXPECT_NEAR(e1[k], eg[k], 1e-12 * eg[k]);
  EXPECT_LT(e4[K - 1], eg[K - 1]);
  // The beam's codes, residuals and error are consistent with each other.
  double check = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> r(x.begin() + i * g, x.begin() + (i + 1) * g);
    for (int k = 0; k < K; ++k) {
      for (int d = 0; d < g; ++d) r[d] -= books.entry(k, beam4[i * K + k])[d];
    }
    for (int d = 0; d < g; ++d) {
      ASSERT_EQ(r[d], r4[i * g + d]);
      check += static_cast<double>(r[d]) * r[d];
    }
  }
  EXPECT_NEAR(check, e4[K - 1], 1e-9 * check);
}

TEST(CpuBackend, AccumulateAndKmeansStepByHand) {
  auto backend = makeCpuBackend();
  // g = 2, C = 3: vectors (1,0), (0,1) -> entry 0 at (0,0); (9,9) -> entry 1 at (10,10);
  // entry 2 at (100,100) gets nothing and keeps its place.
  const float x[6] = {1, 0, 0, 1, 9, 9};
  float codebook[6] = {0, 0, 10, 10, 100, 100};
  std::vector<double> counts(3, 0.0);
  const double before = backend->kmeansStep(x, 3, codebook, 3, 2, counts.data());
  EXPECT_DOUBLE_EQ(before, 1.0 + 1.0 + 2.0);
  EXPECT_EQ(counts, (std::vector<double>{2, 1, 0}));
  const float expected[6] = {0.5f, 0.5f, 9, 9, 100, 100};
  for (int j = 0; j < 6; ++j) EXPECT_EQ(codebook[j], expected[j]);
}

TEST(CpuBackend, EmaStepByHand) {
  auto backend = makeCpuBackend();
  // C = 2, g = 2, 3 vectors: (1,0), (0,1) -> entry 0; (9,9) -> entry 1.
  const float x[6] = {1, 0, 0, 1, 9, 9};
  float codebook[4] = {0, 0, 10, 10};
  double count[2] = {1, 1};
  double sum[4] = {0, 0, 10, 10};
  int32_t codes[3];
  const double decay = 0.5, eps = 0.1;
  backend->emaStep(x, 3, codebook, 2, 2, decay, eps, count, sum, codes);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 1);
  // N = 0.5 * 1 + 0.5 * (2, 1) = (1.5, 1.0); m = 0.5 * m + 0.5 * ((1,1), (9,9)).
  EXPECT_NEAR(count[0], 1.5, 1e-12);
  EXPECT_NEAR(count[1], 1.0, 1e-12);
  EXPECT_NEAR(sum[0], 0.5, 1e-12);
  EXPECT_NEAR(sum[1], 0.5, 1e-12);
  EXPECT_NEAR(sum[2], 9.5, 1e-12);
  EXPECT_NEAR(sum[3], 9.5, 1e-12);
  // Laplace: N~ = (N + eps) / (2.5 + 2 * 0.1) * 2.5 = (1.6, 1.1) * 2.5 / 2.7.
  const double total = 1.5 + 1.0, denom = total + 2 * eps;
  const double n0 = (1.5 + eps) / denom * total, n1 = (1.0 + eps) / denom * total;
  EXPECT_NEAR(codebook[0], 0.5 / n0, 1e-6);  // 0.3375
  EXPECT_NEAR(codebook[2], 9.5 / n1, 1e-6);  // 9.32727...
  EXPECT_EQ(codebook[0], static_cast<float>(0.3375));
  EXPECT_EQ(codebook[1], static_cast<float>(0.5 / n0));
  EXPECT_EQ(codebook[2], static_cast<float>(9.5 / n1));
  EXPECT_EQ(codebook[3], static_cast<float>(9.5 / n1));
}

// Bytes of address space this process maps now (/proc/self/statm, first field).
size_t mappedBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return static_cast<size_t>(pages) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Scratch is allocated before the OpenMP region: when it does not fit, the caller
// gets std::bad_alloc. Allocated inside the region it ended in std::terminate.
TEST(CpuBackendDeathTest, ScratchThatDoesNotFitThrowsInsteadOfTerminating) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "sanitizers reserve more address space than the limit this test sets";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        // C = 2^20 entries, beam 64: each thread wants 64 x 2^20 floats (256 MB) of distances.
        Codebooks books(1, 1 << 20, 4);
        const std::vector<float> x = gaussian(64 * 4, 3);
        std::vector<int32_t> codes(64);
        auto backend = makeCpuBackend(2);
        rlimit limit{};
        getrlimit(RLIMIT_AS, &limit);
        limit.rlim_cur = mappedBytes() + (size_t{96} << 20);
        if (setrlimit(RLIMIT_AS, &limit) != 0) std::_Exit(5);
        try {
          backend->encodeBeam(x.data(), 64, books, 64, codes.data(), nullptr, nullptr);
        } catch (const std::bad_alloc&) {
          std::_Exit(3);
        }
        std::_Exit(4);
      },
      ::testing::ExitedWithCode(3), "");
}

}  // namespace
}  // namespace kvq
