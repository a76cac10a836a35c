// CPU/GPU parity: the CUDA backend must give the CPU backend's results bit for bit, with
// the tensor-core candidates (default) and with --exact. Skips (with the reason) on
// machines without a CUDA device. The data come from parity_cases.h; the host replays
// (test_kernel_replay.cpp) show that each data set tells the defective kernels listed in
// docs/gpu.md from the right one. CudaSanitize.* are the small cases that
// scripts/gpu_check.sh runs under compute-sanitizer.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/gpu/cuda_backend.h"
#include "kvq/gpu/cuda_device.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/trainer.h"
#include "parity_cases.h"
#include "rvq_kernels.h"

namespace {

using kvq::parity::Case;
using kvq::parity::Encoded;

std::unique_ptr<kvq::Backend> gpuBackend(bool exact, int64_t chunkVectors = int64_t{1} << 20) {
  kvq::gpu::CudaBackendOptions options;
  options.exact = exact;
  options.chunkVectors = chunkVectors;
  return kvq::gpu::makeCudaBackend(options);
}

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kvq::gpu::listCudaDevices().empty()) GTEST_SKIP() << "no CUDA device on this machine";
    m_cpu = kvq::makeCpuBackend();
    m_tc = gpuBackend(false);
    m_exact = gpuBackend(true);
  }
  // Both GPU kernels against the CPU on one case: codes, residual and depth-error bits.
  void expectEncodeParity(const Case& c, kvq::Backend& tc, kvq::Backend& exact) {
    const Encoded want = kvq::parity::encode(*m_cpu, c.x.data(), c.n, c.books);
    for (kvq::Backend* gpu : {&tc, &exact}) {
      const Encoded got = kvq::parity::encode(*gpu, c.x.data(), c.n, c.books);
      EXPECT_EQ(kvq::parity::codesDiffering(got, want), 0) << c.name << " " << gpu->name();
      EXPECT_TRUE(kvq::parity::sameBits(got.residual, want.residual)) << c.name << " " << gpu->name();
      for (size_t k = 0; k < want.depthError.size(); ++k) {
        if (std::isnan(want.depthError[k])) continue;
        EXPECT_NEAR(got.depthError[k], want.depthError[k], 1e-12 * want.depthError[k])
            << c.name << " depth " << k;
      }
      EXPECT_TRUE(kvq::parity::sameBits(got.depthError, want.depthError)) << c.name << " " << gpu->name();
    }
  }
  std::unique_ptr<kvq::Backend> m_cpu;
  std::unique_ptr<kvq::Backend> m_tc;
  std::unique_ptr<kvq::Backend> m_exact;
};

TEST_F(CudaParity, TensorCoreLayoutIsTheOneTheKernelAssumes) {
  EXPECT_EQ(kvq::gpu::tensorCoreLayoutErrors(), 0);
}

// g = 3, 8, 32, 128; C = 200 (not a multiple of the 64-entry chunk) and 256; exact
// duplicates (ties to the lowest index), near ties (rounding order), clusters (the
// tensor-core kernel's exact fallback), NaN and infinities.
TEST_F(CudaParity, EncodeIsTheCpuBitForBitOnEveryCase) {
  for (const Case& c : kvq::parity::parityCases(*m_cpu)) expectEncodeParity(c, *m_tc, *m_exact);
}

// Batches of 1024 vectors (the default is 2^20): codes, residuals, depth errors (the CPU's
// 256-vector tiles continue across batches), statistics and EMA steps unchanged.
TEST_F(CudaParity, ForcedMultiBatchRunIsTheCpuBitForBit) {
  auto tc = gpuBackend(false, 1024);
  auto exact = gpuBackend(true, 1024);
  const Case c = kvq::parity::caseNamed(kvq::parity::parityCases(*m_cpu), "near_ties");
  expectEncodeParity(c, *tc, *exact);
  const int C = 256;
  const int g = 32;
  std::vector<int32_t> codes(static_cast<size_t>(c.n));
  m_cpu->nearest(c.x.data(), c.n, c.books.stage(0), C, g, codes.data(), nullptr);
  std::vector<double> wantCounts(C, 0.5), wantSums(static_cast<size_t>(C) * g, 0.25);
  auto gotCounts = wantCounts, gotSums = wantSums;
  m_cpu->accumulate(c.x.data(), c.n, g, codes.data(), C, wantCounts.data(), wantSums.data());
  tc->accumulate(c.x.data(), c.n, g, codes.data(), C, gotCounts.data(), gotSums.data());
  EXPECT_TRUE(kvq::parity::sameBits(gotCounts, wantCounts));
  EXPECT_TRUE(kvq::parity::sameBits(gotSums, wantSums));
  // One EMA step over three batches: its statistics continue across them.
  std::vector<float> wantBook(c.books.stage(0), c.books.stage(0) + C * g);
  auto gotBook = wantBook;
  std::vector<double> wantCount(C, 1.0), wantSum(wantBook.begin(), wantBook.end());
  auto gotCount = wantCount, gotSum = wantSum;
  m_cpu->emaStep(c.x.data(), c.n, wantBook.data(), C, g, 0.99, 1e-5, wantCount.data(), wantSum.data(),
                 nullptr);
  tc->emaStep(c.x.data(), c.n, gotBook.data(), C, g, 0.99, 1e-5, gotCount.data(), gotSum.data(), nullptr);
  EXPECT_TRUE(kvq::parity::sameBits(gotBook, wantBook));
  EXPECT_TRUE(kvq::parity::sameBits(gotSum, wantSum));
}

// The 524 288 x 32 reference shape (C = 2048, K = 8), the authors' benchmark data.
TEST_F(CudaParity, ReferenceShapeIsTheCpuBitForBit) {
  const Case c = kvq::parity::gaussianCase("reference", 524288, 8, 2048, 32, 2024);
  expectEncodeParity(c, *m_tc, *m_exact);
}

TEST_F(CudaParity, StatisticsContinueTheCallersSumsBitForBit) {
  const auto a = kvq::parity::randomAssignment(50000, 32, 512, 3);
  std::vector<double> wantCounts(a.C, 1.0), wantSums(static_cast<size_t>(a.C) * a.g, 0.1);
  auto gotCounts = wantCounts, gotSums = wantSums;
  m_cpu->accumulate(a.x.data(), a.n, a.g, a.codes.data(), a.C, wantCounts.data(), wantSums.data());
  m_tc->accumulate(a.x.data(), a.n, a.g, a.codes.data(), a.C, gotCounts.data(), gotSums.data());
  EXPECT_TRUE(kvq::parity::sameBits(gotCounts, wantCounts));
  EXPECT_TRUE(kvq::parity::sameBits(gotSums, wantSums));
}

// An out-of-range code is refused before anything moves, with the CPU's error.
TEST_F(CudaParity, AccumulateRefusesOutOfRangeCodesAsTheCpu) {
  const int g = 8;
  const int C = 16;
  const auto x = kvq::parity::gaussian(100 * g, 4);
  for (int32_t bad : {-1, C, 1 << 30}) {
    std::vector<int32_t> codes(100, 3);
    codes[57] = bad;
    std::vector<double> counts(C, 0.0), sums(static_cast<size_t>(C) * g, 0.0);
    // How backend b refuses the codes, on zeroed sums: "<kind>: <message>", or "accepted".
    auto refusal = [&](kvq::Backend& b) -> std::string {
      counts.assign(C, 0.0);
      sums.assign(sums.size(), 0.0);
      try {
        b.accumulate(x.data(), 100, g, codes.data(), C, counts.data(), sums.data());
      } catch (const kvq::Error& e) {
        return std::to_string(static_cast<int>(e.kind())) + ": " + e.what();
      }
      return "accepted";
    };
    const std::string cpu = refusal(*m_cpu);
    EXPECT_NE(cpu, "accepted") << "code " << bad;
    EXPECT_EQ(refusal(*m_tc), cpu) << "code " << bad;
    EXPECT_EQ(counts, std::vector<double>(C, 0.0)) << "nothing accumulated";
  }
}

// Five EMA steps: codebook, EMA counts and sums, and the codes output, bit for bit.
TEST_F(CudaParity, EmaStepsAreTheCpuBitForBit) {
  const int g = 32;
  const int C = 200;
  const int64_t n = 8192;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 21);
  for (kvq::Backend* gpu : {m_tc.get(), m_exact.get()}) {
    kvq::parity::EmaState cpuState = kvq::parity::emaStart(C, g, 22), gpuState = cpuState;
    for (int step = 0; step < 5; ++step) {
      std::vector<int32_t> cpuCodes(static_cast<size_t>(n)), gpuCodes(static_cast<size_t>(n), -1);
      kvq::parity::emaStep(*m_cpu, x, n, C, g, 0.99, cpuState, cpuCodes.data());
      kvq::parity::emaStep(*gpu, x, n, C, g, 0.99, gpuState, gpuCodes.data());
      EXPECT_EQ(gpuCodes, cpuCodes) << gpu->name() << " step " << step;
    }
    EXPECT_TRUE(kvq::parity::sameBits(gpuState.book, cpuState.book)) << gpu->name();
    EXPECT_TRUE(kvq::parity::sameBits(gpuState.count, cpuState.count)) << gpu->name();
    EXPECT_TRUE(kvq::parity::sameBits(gpuState.sum, cpuState.sum)) << gpu->name();
  }
}

TEST_F(CudaParity, NearestCodesAndDistancesAreTheCpus) {
  const Case c = kvq::parity::nearTiesCase(kvq::parity::kParityVectors, 1, 200, 32, 12, *m_cpu);
  std::vector<int32_t> wantCodes(static_cast<size_t>(c.n)), gotCodes(static_cast<size_t>(c.n));
  std::vector<float> wantDist(static_cast<size_t>(c.n)), gotDist(static_cast<size_t>(c.n));
  m_cpu->nearest(c.x.data(), c.n, c.books.stage(0), 200, 32, wantCodes.data(), wantDist.data());
  for (kvq::Backend* gpu : {m_tc.get(), m_exact.get()}) {
    gpu->nearest(c.x.data(), c.n, c.books.stage(0), 200, 32, gotCodes.data(), gotDist.data());
    EXPECT_EQ(gotCodes, wantCodes) << gpu->name();
    EXPECT_TRUE(kvq::parity::sameBits(gotDist, wantDist)) << gpu->name();
  }
}

// Everything above together: the same codebooks bit for bit from the whole trainer.
TEST_F(CudaParity, TrainingGivesTheCpusCodebooks) {
  const int g = 32;
  const int64_t n = 30000;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 99);
  kvq::RvqConfig config = kvq::presetConfig("fast");
  config.codebookSize = 256;
  config.depth = 4;
  config.groupSize = g;
  const auto cpuBooks = kvq::trainRvq(x.data(), n, g, config, *m_cpu);
  const auto gpuBooks = kvq::trainRvq(x.data(), n, g, config, *m_tc);
  EXPECT_TRUE(kvq::parity::sameBits(gpuBooks.data, cpuBooks.data));
}

// g = 1024 needs more shared memory than a block may have: "cuda" refuses with
// Error(Resource); with the CPU fallback ("auto") the call runs on the CPU and says so.
TEST_F(CudaParity, GroupTooWideForSharedMemoryFallsBackOrRefuses) {
  const Case c = kvq::parity::gaussianCase("wide", 300, 2, 16, 1024, 31);
  std::vector<int32_t> codes(static_cast<size_t>(c.n) * 2);
  try {
    m_tc->encodeGreedy(c.x.data(), c.n, c.books, codes.data(), nullptr, nullptr);
    ADD_FAILURE() << "g = 1024 ran on the device";
  } catch (const kvq::Error& e) {
    EXPECT_EQ(e.kind(), kvq::ErrorKind::Resource) << e.what();
  }
  kvq::gpu::CudaBackendOptions options;
  options.cpuFallback = true;
  auto fallback = kvq::gpu::makeCudaBackend(options);
  const Encoded got = kvq::parity::encode(*fallback, c.x.data(), c.n, c.books);
  EXPECT_TRUE(kvq::parity::identical(got, kvq::parity::encode(*m_cpu, c.x.data(), c.n, c.books)));
  EXPECT_NE(fallback->name().find("on the CPU"), std::string::npos) << fallback->name();
}

TEST(CudaBackendChoice, AutoFallsBackToCpuWithAReason) {
  kvq::gpu::registerCudaBackend();
  std::string note;
  auto backend = kvq::makeBackend("auto", 0, &note);
  ASSERT_NE(backend, nullptr);
  EXPECT_FALSE(note.empty());
  if (kvq::gpu::listCudaDevices().empty()) {
    EXPECT_NE(backend->name().find("CPU"), std::string::npos);
    EXPECT_NE(note.find("no GPU"), std::string::npos);
  } else {
    EXPECT_NE(backend->name().find("CUDA"), std::string::npos);
    kvq::BackendOptions exact;
    exact.gpuExact = true;
    EXPECT_NE(kvq::makeBackend("cuda", exact)->name().find("exact fp32"), std::string::npos);
  }
}

// Small cases for compute-sanitizer (memcheck, racecheck): both encode kernels incl. the
// exact fallback and padding, statistics and the EMA kernels.
class CudaSanitize : public CudaParity {};

TEST_F(CudaSanitize, EncodeKernels) {
  expectEncodeParity(kvq::parity::nearTiesCase(700, 2, 200, 32, 8, *m_cpu), *m_tc, *m_exact);
  expectEncodeParity(kvq::parity::clusteredCase(300, 2, 128, 32, 9, *m_cpu), *m_tc, *m_exact);
  expectEncodeParity(kvq::parity::residualCase("g3", 300, 2, 70, 3, 101, *m_cpu), *m_tc, *m_exact);
}

TEST_F(CudaSanitize, StatisticsAndEmaKernels) {
  const int g = 8;
  const int C = 70;
  const int64_t n = 3000;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 41);
  kvq::parity::EmaState cpuState = kvq::parity::emaStart(C, g, 42), gpuState = cpuState;
  std::vector<int32_t> cpuCodes(static_cast<size_t>(n)), gpuCodes(static_cast<size_t>(n));
  kvq::parity::emaStep(*m_cpu, x, n, C, g, 0.9, cpuState, cpuCodes.data());
  kvq::parity::emaStep(*m_tc, x, n, C, g, 0.9, gpuState, gpuCodes.data());
  EXPECT_EQ(gpuCodes, cpuCodes);
  EXPECT_TRUE(kvq::parity::sameBits(gpuState.book, cpuState.book));
  std::vector<double> wantCounts(C, 0.0), wantSums(static_cast<size_t>(C) * g, 0.0);
  auto gotCounts = wantCounts, gotSums = wantSums;
  m_cpu->accumulate(x.data(), n, g, cpuCodes.data(), C, wantCounts.data(), wantSums.data());
  m_tc->accumulate(x.data(), n, g, cpuCodes.data(), C, gotCounts.data(), gotSums.data());
  EXPECT_TRUE(kvq::parity::sameBits(gotSums, wantSums));
}

}  // namespace
