// Device-free evidence for the CUDA backend: host replays of its kernels (kernel_replay.h)
// must give the CPU backend's codes, residuals, depth errors, statistics and EMA updates
// bit for bit on the data of the GPU parity tests (parity_cases.h), and each deliberate
// defect must change a result on the data of the parity test that guards against it.
// Runs everywhere (no CUDA needed).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
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
  return kvq::parity::encode(cpu, c.x.data(), c.n, c.books);
}

using kvq::parity::codesDiffering;
using kvq::parity::identical;

class KernelReplay : public ::testing::Test {
 protected:
  void SetUp() override { m_cpu = kvq::makeCpuBackend(); }

  // A parity case (parity_cases.h) by name, and the CPU's encoding of it.
  struct Wanted {
    const Case& c;
    EncodeResult want;
  };
  Wanted parityCase(const std::string& name) {
    if (m_cases.empty()) m_cases = kvq::parity::parityCases(*m_cpu);
    const Case& c = kvq::parity::caseNamed(m_cases, name);
    return {c, cpuEncode(*m_cpu, c)};
  }

  std::unique_ptr<kvq::Backend> m_cpu;
  std::vector<Case> m_cases;  // filled by the first parityCase
};

TEST_F(KernelReplay, ExactKernelIsTheCpuBitForBitOnEveryParityCase) {
  for (const Case& c : kvq::parity::parityCases(*m_cpu)) {
    const EncodeResult want = cpuEncode(*m_cpu, c);
    EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, int64_t{1} << 20), want))
        << c.name;
    // A forced multi-batch run (batches of 1024): the same bits.
    EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, 1024), want)) << c.name;
  }
}

TEST_F(KernelReplay, TensorCoreCandidatesAreTheCpuBitForBitUnderEveryAccumulationModel) {
  for (const Case& c : kvq::parity::parityCases(*m_cpu)) {
    if (c.books.dim > 32) continue;  // g = 128 takes the exact kernel
    const EncodeResult want = cpuEncode(*m_cpu, c);
    // Every accumulation model for g = 32 (the paper's); round to nearest for the others.
    const std::vector<MmaModel> models =
        c.books.dim == 32 ? std::vector<MmaModel>{MmaModel::Nearest, MmaModel::Truncate, MmaModel::WorstCase}
                          : std::vector<MmaModel>{MmaModel::Nearest};
    for (MmaModel model : models) {
      kvq::replay::TcStats stats;
      const EncodeResult got =
          kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, model, &stats, true);
      EXPECT_TRUE(identical(got, want)) << c.name << " model " << static_cast<int>(model);
      EXPECT_LT(stats.worstErrorOverBound, 1.0) << c.name << ": the candidate bound does not hold";
      std::printf(
          "%-10s model %d: %lld decisions, %.4f%% by the exact fallback, %.2f candidates re-ranked "
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
  const Wanted near = parityCase("near_ties");
  const Wanted dup = parityCase("duplicates");
  const Case& nearTies = near.c;
  const EncodeResult& nearWant = near.want;
  for (Defect d : {Defect::NormAddedLast, Defect::ReversedChannels, Defect::SeparateMultiplyAdd}) {
    const EncodeResult got =
        kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books, int64_t{1} << 20, d);
    EXPECT_GT(codesDiffering(got, nearWant), 10) << "defect " << static_cast<int>(d);
  }
  EXPECT_GT(codesDiffering(kvq::replay::replayExactEncode(dup.c.x.data(), dup.c.n, dup.c.books,
                                                          int64_t{1} << 20, Defect::TiesToHighest),
                           dup.want),
            100);
  const EncodeResult fromSum = kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books,
                                                              int64_t{1} << 20, Defect::ResidualFromSum);
  EXPECT_NE(std::memcmp(fromSum.residual.data(), nearWant.residual.data(), fromSum.residual.size() * 4), 0);
  const EncodeResult perBatch = kvq::replay::replayExactEncode(nearTies.x.data(), nearTies.n, nearTies.books,
                                                               1024, Defect::ErrorPerBatch);
  EXPECT_NE(
      std::memcmp(perBatch.depthError.data(), nearWant.depthError.data(), perBatch.depthError.size() * 8), 0)
      << "a multi-batch run must tell per-batch sums from the CPU's tile order";
}

TEST_F(KernelReplay, TensorCoreDefectsChangeTheCodesOnTheParityData) {
  const Wanted plain = parityCase("near_ties");
  const Wanted clusters = parityCase("clusters");
  auto tc = [](const Case& c, TcDefect d) {
    return kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest, nullptr, false,
                                               d);
  };
  EXPECT_GT(codesDiffering(tc(plain.c, TcDefect::NoRerank), plain.want), 10);
  EXPECT_GT(codesDiffering(tc(clusters.c, TcDefect::ZeroWindow), clusters.want), 10);
  EXPECT_GT(codesDiffering(tc(clusters.c, TcDefect::IgnoreDropped), clusters.want), 10);
}

TEST_F(KernelReplay, StatisticsContinueAcrossBatchesAsTheCpuSums) {
  const auto a = kvq::parity::randomAssignment(5000, 32, 200, 3);
  // Running sums that do not start at zero (accumulate adds into the caller's arrays).
  std::vector<double> cpuCounts(a.C, 0.5), cpuSums = std::vector<double>(static_cast<size_t>(a.C) * a.g, 0.1);
  auto repCounts = cpuCounts, repSums = cpuSums, badCounts = cpuCounts, badSums = cpuSums;
  m_cpu->accumulate(a.x.data(), a.n, a.g, a.codes.data(), a.C, cpuCounts.data(), cpuSums.data());
  kvq::replay::replayAccumulate(a.x.data(), a.n, a.g, a.codes.data(), a.C, repCounts.data(), repSums.data(),
                                1024);
  EXPECT_EQ(std::memcmp(cpuCounts.data(), repCounts.data(), static_cast<size_t>(a.C) * 8), 0);
  EXPECT_EQ(std::memcmp(cpuSums.data(), repSums.data(), cpuSums.size() * 8), 0);
  kvq::replay::replayAccumulate(a.x.data(), a.n, a.g, a.codes.data(), a.C, badCounts.data(), badSums.data(),
                                1024, true);
  EXPECT_NE(std::memcmp(cpuSums.data(), badSums.data(), cpuSums.size() * 8), 0);
}

TEST_F(KernelReplay, EmaUpdateIsTheCpuStepBitForBit) {
  const int g = 32;
  const int C = 128;
  const int64_t n = 8192;
  const auto x = kvq::parity::gaussian(static_cast<size_t>(n) * g, 21);
  kvq::parity::EmaState cpu = kvq::parity::emaStart(C, g, 22), rep = cpu, bad = cpu;
  for (int step = 0; step < 3; ++step) {
    std::vector<int32_t> cpuCodes(static_cast<size_t>(n));
    kvq::parity::emaStep(*m_cpu, x, n, C, g, 0.99, cpu, cpuCodes.data());
    for (kvq::parity::EmaState* state : {&rep, &bad}) {
      const bool defect = state == &bad;
      std::vector<int32_t> codes(static_cast<size_t>(n));
      m_cpu->nearest(x.data(), n, state->book.data(), C, g, codes.data(), nullptr);
      if (!defect) {
        EXPECT_EQ(codes, cpuCodes) << "emaStep's codes output is the assignment it used";
      }
      std::vector<double> counts(C, 0.0), sums(static_cast<size_t>(C) * g, 0.0);
      kvq::replay::replayAccumulate(x.data(), n, g, codes.data(), C, counts.data(), sums.data(), 1024);
      kvq::replay::replayEmaUpdate(state->count.data(), state->sum.data(), state->book.data(), counts.data(),
                                   sums.data(), C, g, 0.99, 1e-5, defect);
    }
  }
  EXPECT_EQ(std::memcmp(cpu.book.data(), rep.book.data(), cpu.book.size() * 4), 0);
  EXPECT_EQ(std::memcmp(cpu.count.data(), rep.count.data(), C * 8), 0);
  EXPECT_EQ(std::memcmp(cpu.sum.data(), rep.sum.data(), cpu.sum.size() * 8), 0);
  EXPECT_NE(std::memcmp(cpu.sum.data(), bad.sum.data(), cpu.sum.size() * 8), 0) << "an FMA must show";
}

// The first 4096 vectors of the reference shape's data (C = 2048, K = 8, g = 32; the
// device test encodes all 524 288): both kernels' replays give the CPU's bits.
// KVQ_REPLAY_REFERENCE_VECTORS=N replays the first N instead (docs/gpu.md quotes 65 536).
TEST_F(KernelReplay, ReferenceShapeSliceBothKernels) {
  const char* env = std::getenv("KVQ_REPLAY_REFERENCE_VECTORS");
  const int64_t n = env != nullptr ? std::atoll(env) : 4096;
  const Case c = kvq::parity::gaussianCase("reference", n, 8, 2048, 32, 2024);
  const EncodeResult want = cpuEncode(*m_cpu, c);
  EXPECT_TRUE(identical(kvq::replay::replayExactEncode(c.x.data(), c.n, c.books, int64_t{1} << 20), want));
  kvq::replay::TcStats stats;
  EXPECT_TRUE(identical(
      kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest, &stats), want));
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
  // CI: keys only; KVQ_REPLAY_FULL=1 adds the values (docs/gpu.md quotes both).
  const bool full = std::getenv("KVQ_REPLAY_FULL") != nullptr;
  std::vector<kvq::Kind> kinds{kvq::Kind::Keys};
  if (full) kinds.push_back(kvq::Kind::Values);
  for (int layer : {0, 12}) {
    for (kvq::Kind kind : kinds) {
      const kvq::Slab slab = reader->read(layer, kind);
      const int64_t vectors = slab.tokens * slab.heads;
      const auto order = kvq::channelOrder(
          info.headDim, g, kind == kvq::Kind::Keys ? kvq::Grouping::Strided : kvq::Grouping::Contiguous);
      std::vector<float> groups(static_cast<size_t>(vectors) * info.headDim);
      std::vector<float> scales(static_cast<size_t>(vectors));
      kvq::scaleAndGroup(slab.data.data(), vectors, info.headDim, order, g, groups.data(), scales.data());
      const int64_t n = vectors * (info.headDim / g);
      const int64_t train = n * 3 / 4;
      kvq::RvqConfig config = kvq::presetConfig("fast");
      const kvq::Codebooks books = kvq::trainRvq(groups.data(), train, g, config, *m_cpu);
      // CI encodes the first 2 048 held-out vectors; KVQ_REPLAY_FULL=1 all of them.
      const int64_t held = full ? n - train : std::min<int64_t>(2048, n - train);
      Case c{"sample", held,
             std::vector<float>(groups.begin() + train * g, groups.begin() + (train + held) * g), books};
      kvq::replay::TcStats stats;
      EXPECT_TRUE(
          identical(kvq::replay::replayTensorCoreEncode(c.x.data(), c.n, c.books, MmaModel::Nearest, &stats),
                    cpuEncode(*m_cpu, c)));
      std::printf(
          "sample layer %2d %-6s: %lld decisions, %.4f%% settled by the candidates, %.2f re-ranked each\n",
          layer, kind == kvq::Kind::Keys ? "keys" : "values", static_cast<long long>(stats.decisions),
          100.0 - 100.0 * static_cast<double>(stats.fallbacks) / static_cast<double>(stats.decisions),
          static_cast<double>(stats.reranked) / static_cast<double>(stats.decisions));
    }
  }
}

TEST(KernelMath, TopScoresKeepsTheFourHighestAndTheEarlierOfTies) {
  kvq::gpu::TopScores top;
  const float values[] = {1.0f, 5.0f, 3.0f, 5.0f, 2.0f, 4.0f, 0.5f, 3.0f};
  for (int e = 0; e < 8; ++e) top.offer(values[e], e);
  // 5 (entry 1), 5 (entry 3), 4 (entry 5), 3 (entry 2); entry 7's 3 ties the last: dropped.
  EXPECT_EQ(std::vector<float>(top.v, top.v + 4), (std::vector<float>{5.0f, 5.0f, 4.0f, 3.0f}));
  EXPECT_EQ(std::vector<int>(top.i, top.i + 4), (std::vector<int>{1, 3, 5, 2}));
  EXPECT_TRUE(top.mayHaveDropped(3.0f));   // entry 7 (3) was dropped and reaches 3
  EXPECT_FALSE(top.mayHaveDropped(3.5f));  // every dropped entry scores <= 3
  kvq::gpu::TopScores partial;
  partial.offer(2.0f, 0);
  partial.offer(std::nanf(""), 1);  // NaN is never kept
  EXPECT_EQ(partial.i[1], -1);
  EXPECT_FALSE(partial.mayHaveDropped(-1e30f));  // not full: nothing finite was dropped
}

TEST(KernelMath, ShadowedEntriesAreLaterCopiesOfTheSameBits) {
  // Rows: a, b, a, c, b, a, +0, -0 (g = 2); -0 and +0 differ in their bits: both kept.
  const float rows[] = {1, 2, 3, 4, 1, 2, 5, 6, 3, 4, 1, 2, 0.0f, 0.0f, -0.0f, 0.0f};
  uint8_t shadowed[8];
  kvq::gpu::findShadowedEntries(rows, 8, 2, shadowed);
  EXPECT_EQ(std::vector<uint8_t>(shadowed, shadowed + 8), (std::vector<uint8_t>{0, 0, 1, 0, 1, 1, 0, 0}));
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
