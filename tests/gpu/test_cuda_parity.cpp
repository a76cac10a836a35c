// CPU/GPU parity: the same inputs through both backends must agree.
// Skips (with the reason) on machines without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kvq/gpu/cuda_backend.h"
#include "kvq/gpu/cuda_device.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/trainer.h"

namespace {

std::vector<float> gaussian(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(count);
  for (float& v : out) v = normal(rng);
  return out;
}

class CudaParity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kvq::gpu::listCudaDevices().empty()) GTEST_SKIP() << "no CUDA device on this machine";
    m_cpu = kvq::makeCpuBackend();
    m_gpu = kvq::gpu::makeCudaBackend(0);
  }
  std::unique_ptr<kvq::Backend> m_cpu;
  std::unique_ptr<kvq::Backend> m_gpu;
};

TEST_F(CudaParity, GreedyEncodeMatchesCpu) {
  for (int g : {8, 32, 64}) {
    const int K = 4;
    const int C = 256;
    const int64_t n = 20000;
    kvq::Codebooks books(K, C, g);
    books.data = gaussian(books.data.size(), 7);
    for (float& v : books.data) v *= 0.5f;
    const auto x = gaussian(static_cast<size_t>(n) * g, 11);
    std::vector<int32_t> cpuCodes(n * K), gpuCodes(n * K);
    std::vector<double> cpuErr(K, 0.0), gpuErr(K, 0.0);
    std::vector<float> cpuRes(n * g), gpuRes(n * g);
    m_cpu->encodeGreedy(x.data(), n, books, cpuCodes.data(), cpuErr.data(), cpuRes.data());
    m_gpu->encodeGreedy(x.data(), n, books, gpuCodes.data(), gpuErr.data(), gpuRes.data());
    // Compare per vector: all K codes equal.
    int64_t sameVectors = 0;
    for (int64_t i = 0; i < n; ++i) {
      bool same = true;
      for (int k = 0; k < K; ++k) same = same && cpuCodes[i * K + k] == gpuCodes[i * K + k];
      sameVectors += same ? 1 : 0;
    }
    EXPECT_GE(static_cast<double>(sameVectors) / n, 0.9999) << "g=" << g;
    for (int k = 0; k < K; ++k)
      EXPECT_NEAR(gpuErr[k] / cpuErr[k], 1.0, 1e-3) << "g=" << g << " depth " << k + 1;
  }
}

TEST_F(CudaParity, EntryStatisticsMatchCpu) {
  const int g = 32;
  const int C = 512;
  const int64_t n = 50000;
  const auto x = gaussian(static_cast<size_t>(n) * g, 3);
  std::vector<int32_t> codes(n);
  std::mt19937 rng(5);
  for (auto& c : codes) c = static_cast<int32_t>(rng() % C);
  std::vector<double> cpuCounts(C, 0.0), gpuCounts(C, 0.0), cpuSums(C * g, 0.0), gpuSums(C * g, 0.0);
  m_cpu->accumulate(x.data(), n, g, codes.data(), C, cpuCounts.data(), cpuSums.data());
  m_gpu->accumulate(x.data(), n, g, codes.data(), C, gpuCounts.data(), gpuSums.data());
  for (int i = 0; i < C; ++i) EXPECT_EQ(cpuCounts[i], gpuCounts[i]);
  for (size_t i = 0; i < cpuSums.size(); ++i)
    EXPECT_NEAR(cpuSums[i], gpuSums[i], 1e-9 * (1.0 + std::abs(cpuSums[i])));
}

TEST_F(CudaParity, EmaStepMatchesCpu) {
  const int g = 32;
  const int C = 128;
  const int64_t n = 8192;
  const auto x = gaussian(static_cast<size_t>(n) * g, 21);
  auto cpuBook = gaussian(static_cast<size_t>(C) * g, 22);
  auto gpuBook = cpuBook;
  std::vector<double> cpuCount(C, 1.0), gpuCount(C, 1.0), cpuSum(C * g, 0.0), gpuSum(C * g, 0.0);
  for (int step = 0; step < 5; ++step) {
    m_cpu->emaStep(x.data(), n, cpuBook.data(), C, g, 0.99, 1e-5, cpuCount.data(), cpuSum.data(), nullptr);
    m_gpu->emaStep(x.data(), n, gpuBook.data(), C, g, 0.99, 1e-5, gpuCount.data(), gpuSum.data(), nullptr);
  }
  for (int i = 0; i < C; ++i) EXPECT_NEAR(cpuCount[i], gpuCount[i], 1e-6 * (1.0 + cpuCount[i]));
  for (size_t i = 0; i < cpuBook.size(); ++i) EXPECT_NEAR(cpuBook[i], gpuBook[i], 1e-4);
}

TEST_F(CudaParity, TrainingGivesCodebooksOfEqualQuality) {
  const int g = 32;
  const int64_t n = 30000;
  const auto x = gaussian(static_cast<size_t>(n) * g, 99);
  kvq::RvqConfig config = kvq::presetConfig("fast");
  config.codebookSize = 256;
  config.depth = 4;
  config.groupSize = g;
  const auto cpuBooks = kvq::trainRvq(x.data(), n, g, config, *m_cpu);
  const auto gpuBooks = kvq::trainRvq(x.data(), n, g, config, *m_gpu);
  std::vector<int32_t> codes(n * config.depth);
  std::vector<double> cpuErr(config.depth, 0.0), gpuErr(config.depth, 0.0);
  m_cpu->encodeGreedy(x.data(), n, cpuBooks, codes.data(), cpuErr.data(), nullptr);
  m_cpu->encodeGreedy(x.data(), n, gpuBooks, codes.data(), gpuErr.data(), nullptr);
  // Near-ties may resolve differently in the two backends' fp32 arithmetic, after which
  // training paths diverge slightly: compare the codebooks' quality, within 1 %.
  EXPECT_NEAR(gpuErr.back() / cpuErr.back(), 1.0, 0.01);
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
  }
}

}  // namespace
