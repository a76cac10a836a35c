// Device-free evidence for the CUDA backend: host replays of its kernels (kernel_replay.h)
// must give the CPU backend's codes, residuals, depth errors, statistics and EMA updates
// bit for bit on the data of the GPU parity tests (parity_cases.h), and each deliberate
// defect must change a result on the data of the parity test that guards against it.
// Runs everywhere (no CUDA needed).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernel_math.h"
#include "kernel_replay.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/rvq/trainer.h"
#include "parity_cases.h"

namespace {

using kvq::parity::Case;
using kvq::replay::Defect;
using kvq::replay::EncodeResult;
using kvq::replay::MmaModel;
using kvq::replay::TcDefect;

EncodeResult cpuEncode(kvq::Backend& cpu, const Case& c) {
  const int K = c.books.depth;
  EncodeResult r;
  r.codes.resize(static_cast<size_t>(c.n) * K);
  r.residual.resize(static_cast<size_t>(c.n) * c.books.dim);
  r.depthError.assign(static_cast<size_t>(K), 0.0);
  cpu.encodeGreedy(c.x.data(), c.n, c.books, r.codes.data(), r.depthError.data(), r.residual.data());
  return r;
}

// Equal bits, or both NaN (NaN payloads are not part of the contract).
template <typename T>
bool sameBits(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return false;
  }
  return true;
}

// Bitwise: codes, residual bits and depth-error bits all equal.
bool identical(const EncodeResult& a, const EncodeResult& b) {
  return a.codes == b.codes && sameBits(a.residual, b.residual) && sameBits(a.depthError, b.depthError);
}

int64_t codesDiffering(const EncodeResult& a, const EncodeResult& b) {
  int64_t differ = 0;
  for (size_t i = 0; i < a.codes.size(); ++i) differ += a.codes[i] != b.codes[i] ? 1 : 0;
  return differ;
}

class KernelReplay : public ::testing::Test {
 protected:
  void SetUp() override { m_cpu = kvq::makeCpuBackend(); }
  std::unique_ptr<kvq::Backend> m_cpu;
};

TEST_F(KernelReplay, ExactKernelIsTheCpuBitForBitOnEveryParityCase) {
  std::vector<Case> cases = kvq::parity::shapeCases(*m_cpu, 3000);
  cases.push_back(kvq::parity::duplicatesCase(3000, 4, 256, 32, 7, *m_cpu));
  cases.push_back(kvq::parity::nearTiesCase(3000, 4, 256, 32, 8, *m_cpu));
  cases.push_back(kvq::parity::clusteredCase(3000, 3, 256, 32, 9, *m_cpu));
  cases.push_back(kvq::parity::nonFiniteCase(3000, 3, 200, 32, 10, *m_cpu));
  for (const Case& c : cases) {
    const EncodeResult want = cpuEncode(*m_cpu, c);
    EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, int64_t{1} << 20), want))
        << c.name;
    // A forced multi-batch run (batches of 1024): the same bits.
    EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, 1024), want)) << c.name;
  }
}

TEST_F(KernelReplay, TensorCoreCandidatesAreTheCpuBitForBitUnderEveryAccumulationModel) {
  std::vector<Case> cases = kvq::parity::shapeCases(*m_cpu, 2000);
  cases.pop_back();  // g = 128 takes the exact kernel
  cases.push_back(kvq::parity::duplicatesCase(2000, 4, 256, 32, 7, *m_cpu));
  cases.push_back(kvq::parity::nearTiesCase(2000, 4, 256, 32, 8, *m_cpu));
  cases.push_back(kvq::parity::clusteredCase(2000, 3, 256, 32, 9, *m_cpu));
  cases.push_back(kvq::parity::nonFiniteCase(2000, 3, 200, 32, 10, *m_cpu));
  for (const Case& c : cases) {
    const EncodeResult want = cpuEncode(*m_cpu, c);
    for (MmaModel model : {MmaModel::Nearest, MmaModel::Truncate, MmaModel::WorstCase}) {
      kvq::replay::TcStats stats;
      const EncodeResult got = kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, model, &stats, true);
      EXPECT_TRUE(identical(got, want)) << c.name << " model " << static_cast<int>(model);
      EXPECT_LT(stats.worstErrorOverBound, 1.0) << c.name << ": the candidate bound does not hold";
      std::printf("%-10s model %d: %lld decisions, %.4f%% by the exact fallback, %.2f candidates re-ranked "
                  "per decision, max |A-D|/B %.3f\n",
                  c.name.c_str(), static_cast<int>(model), static_cast<long long>(stats.decisions),
                  100.0 * static_cast<double>(stats.fallbacks) / static_cast<double>(stats.decisions),
                  static_cast<double>(stats.reranked) / static_cast<double>(stats.decisions),
                  stats.worstErrorOverBound);
    }
  }
}

// Each defect must change a result on the data of the parity test that guards against it
// (test_cuda_parity.cpp); otherwise that test could pass with the defect.
TEST_F(KernelReplay, ExactKernelDefectsChangeTheResultsOnTheParityData) {
  const Case nearTies = kvq::parity::nearTiesCase(3000, 4, 256, 32, 8, *m_cpu);
  const Case duplicates = kvq::parity::duplicatesCase(3000, 4, 256, 32, 7, *m_cpu);
  const EncodeResult nearWant = cpuEncode(*m_cpu, nearTies);
  const EncodeResult dupWant = cpuEncode(*m_cpu, duplicates);
  for (Defect d : {Defect::NormAddedLast, Defect::ReversedChannels, Defect::SeparateMultiplyAdd}) {
    const EncodeResult got = kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books,
                                                            int64_t{1} << 20, d);
    EXPECT_GT(codesDiffering(got, nearWant), 10) << "defect " << static_cast<int>(d);
  }
  EXPECT_GT(codesDiffering(kvq::replay::replayExactEncode(duplicates.x.data(), duplicates.n, duplicates.books,
                                                          int64_t{1} << 20, Defect::TiesToHighest),
                           dupWant),
            100);
  const EncodeResult fromSum = kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books,
                                                              int64_t{1} << 20, Defect::ResidualFromSum);
  EXPECT_NE(std::memcmp(fromSum.residual.data(), nearWant.residual.data(), fromSum.residual.size() * 4), 0);
  const EncodeResult perBatch =
      kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books, 1024, Defect::ErrorPerBatch);
  EXPECT_NE(std::memcmp(perBatch.depthError.data(), nearWant.depthError.data(), perBatch.depthError.size() * 8), 0)
      << "a multi-batch run must tell per-batch sums from the CPU's tile order";
}

TEST_F(KernelReplay, TensorCoreDefectsChangeTheCodesOnTheParityData) {
  const Case plain = kvq::parity::residualCase("g32_C256", 2000, 4, 256, 32, 104, *m_cpu);
  const Case clusters = kvq::parity::clusteredCase(2000, 3, 256, 32, 9, *m_cpu);
  const EncodeResult plainWant = cpuEncode(*m_cpu, plain);
  const EncodeResult clusterWant = cpuEncode(*m_cpu, clusters);
  auto tc = [](const Case& c, TcDefect d) {
    return kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest, nullptr, false, d);
  };
  EXPECT_GT(codesDiffering(tc(plain, TcDefect::NoRerank), plainWant), 10);
  EXPECT_GT(codesDiffering(tc(clusters, TcDefect::ZeroWindow), clusterWant), 10);
  EXPECT_GT(codesDiffering(tc(clusters, TcDefect::IgnoreDropped), clusterWant), 10);
}

TEST_F(KernelReplay, StatisticsContinueAcrossBatchesAsTheCpuSums) {
  const int g = 32;
  const int C = 200;
  const int64_t n = 5000;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 3);
  std::vector<int32_t> codes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) codes[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % C);
  // Running sums that do not start at zero (accumulate adds into the caller's arrays).
  std::vector<double> cpuCounts(C, 0.5), cpuSums = std::vector<double>(static_cast<size_t>(C) * g, 0.1);
  auto repCounts = cpuCounts, repSums = cpuSums, badCounts = cpuCounts, badSums = cpuSums;
  m_cpu->accumulate(x.data(), n, g, codes.data(), C, cpuCounts.data(), cpuSums.data());
  kvq::replay::replayAccumulate(x.data(), n, g, codes.data(), C, repCounts.data(), repSums.data(), 1024);
  EXPECT_EQ(std::memcmp(cpuCounts.data(), repCounts.data(), C * 8), 0);
  EXPECT_EQ(std::memcmp(cpuSums.data(), repSums.data(), cpuSums.size() * 8), 0);
  kvq::replay::replayAccumulate(x.data(), n, g, codes.data(), C, badCounts.data(), badSums.data(), 1024, true);
  EXPECT_NE(std::memcmp(cpuSums.data(), badSums.data(), cpuSums.size() * 8), 0);
}

TEST_F(KernelReplay, EmaUpdateIsTheCpuStepBitForBit) {
  const int g = 32;
  const int C = 128;
  const int64_t n = 8192;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 21);
  auto cpuBook = kvq::parity::gaussian(static_cast<size_t>(C) * g, 22);
  auto repBook = cpuBook, badBook = cpuBook;
  std::vector<double> cpuCount(C, 1.0), cpuSum(cpuBook.begin(), cpuBook.end());
  auto repCount = cpuCount, repSum = cpuSum, badCount = cpuCount, badSum = cpuSum;
  for (int step = 0; step < 3; ++step) {
    std::vector<int32_t> cpuCodes(static_cast<size_t>(n));
    m_cpu->emaStep(x.data(), n, cpuBook.data(), C, g, 0.99, 1e-5, cpuCount.data(), cpuSum.data(), cpuCodes.data());
    for (auto* state : {&repBook, &badBook}) {
      const bool bad = state == &badBook;
      std::vector<int32_t> codes(static_cast<size_t>(n));
      m_cpu->nearest(x.data(), n, state->data(), C, g, codes.data(), nullptr);
      if (!bad) {
        EXPECT_EQ(codes, cpuCodes) << "emaStep's codes output is the assignment it used";
      }
      std::vector<double> counts(C, 0.0), sums(static_cast<size_t>(C) * g, 0.0);
      kvq::replay::replayAccumulate(x.data(), n, g, codes.data(), C, counts.data(), sums.data(), 1024);
      kvq::replay::replayEmaUpdate(bad ? badCount.data() : repCount.data(), bad ? badSum.data() : repSum.data(),
                                   state->data(), counts.data(), sums.data(), C, g, 0.99, 1e-5, bad);
    }
  }
  EXPECT_EQ(std::memcmp(cpuBook.data(), repBook.data(), cpuBook.size() * 4), 0);
  EXPECT_EQ(std::memcmp(cpuCount.data(), repCount.data(), C * 8), 0);
  EXPECT_EQ(std::memcmp(cpuSum.data(), repSum.data(), cpuSum.size() * 8), 0);
  EXPECT_NE(std::memcmp(cpuSum.data(), badSum.data(), cpuSum.size() * 8), 0) << "an FMA must show";
}

// The first 4096 vectors of the reference shape's data (C = 2048, K = 8, g = 32; the
// device test encodes all 524 288): both kernels' replays give the CPU's bits.
TEST_F(KernelReplay, ReferenceShapeSliceBothKernels) {
  const Case c = kvq::parity::gaussianCase("reference", 4096, 8, 2048, 32, 2024);
  const EncodeResult want = cpuEncode(*m_cpu, c);
  EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, int64_t{1} << 20), want));
  kvq::replay::TcStats stats;
  EXPECT_TRUE(identical(kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest, &stats),
                        want));
  std::printf("reference slice: %lld decisions, %.4f%% by the exact fallback, %.2f re-ranked per decision\n",
              static_cast<long long>(stats.decisions),
              100.0 * static_cast<double>(stats.fallbacks) / static_cast<double>(stats.decisions),
              static_cast<double>(stats.reranked) / static_cast<double>(stats.decisions));
}

// The share of (vector, stage) decisions that the tensor-core candidates settle without the
// exact fallback, on real data: keys and values of layers 0 and 12 of the bundled sample,
// codebooks trained on the first 75 % of the tokens ("fast" preset, C = 2048, K = 8),
// encoded: the last 25 %. The codes must be the CPU's in every case; the share is reported.
TEST_F(KernelReplay, CandidateShareOnTheBundledSample) {
  const auto reader = kvq::DumpReader::open(KVQ_SAMPLE_DUMP);
  const kvq::DumpInfo& info = reader->info();
  const int g = 32;
  for (int layer : {0, 12}) {
    for (kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
      const kvq::Slab slab = reader->read(layer, kind);
      const int64_t vectors = slab.tokens * slab.heads;
      const auto order = kvq::channelOrder(info.headDim, g, kind == kvq::Kind::Keys ? kvq::Grouping::Strided
                                                                                    : kvq::Grouping::Contiguous);
      std::vector<float> groups(static_cast<size_t>(vectors) * info.headDim);
      std::vector<float> scales(static_cast<size_t>(vectors));
      kvq::scaleAndGroup(slab.data.data(), vectors, info.headDim, order, g, groups.data(), scales.data());
      const int64_t n = vectors * (info.headDim / g);
      const int64_t train = n * 3 / 4;
      kvq::RvqConfig config = kvq::presetConfig("fast");
      const kvq::Codebooks books = kvq::trainRvq(groups.data(), train, g, config, *m_cpu);
      Case c{"sample", n - train, std::vector<float>(groups.begin() + train * g, groups.end()), books};
      kvq::replay::TcStats stats;
      EXPECT_TRUE(identical(kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest,
                                                                &stats),
                            cpuEncode(*m_cpu, c)));
      std::printf("sample layer %2d %-6s: %lld decisions, %.4f%% settled by the candidates, %.2f re-ranked each\n",
                  layer, kind == kvq::Kind::Keys ? "keys" : "values", static_cast<long long>(stats.decisions),
                  100.0 - 100.0 * static_cast<double>(stats.fallbacks) / static_cast<double>(stats.decisions),
                  static_cast<double>(stats.reranked) / static_cast<double>(stats.decisions));
    }
  }
}

TEST(KernelMath, Tf32RoundingIsToNearestTiesAway) {
  EXPECT_EQ(kvq::gpu::roundTf32(1.0f), 1.0f);
  EXPECT_EQ(kvq::gpu::roundTf32(1.0f + 0x1p-11f), 1.0f + 0x1p-10f);  // tie: away from zero
  EXPECT_EQ(kvq::gpu::roundTf32(1.0f + 0x1p-12f), 1.0f);
  EXPECT_EQ(kvq::gpu::roundTf32(-(1.0f + 0x1p-11f)), -(1.0f + 0x1p-10f));
  EXPECT_TRUE(std::isnan(kvq::gpu::roundTf32(std::nanf(""))));
  EXPECT_EQ(kvq::gpu::roundTf32(kvq::gpu::kInfF), kvq::gpu::kInfF);
}

}  // namespace
