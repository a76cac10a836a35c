// Work estimates (hand-worked multiply-add counts), the preview recipe, the sizes
// around a codebook size and the memory of a planned study.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kvq/rvq/cpu_backend.h"
#include "kvq/study/work_estimate.h"
#include "quick_training.h"

namespace kvq {
namespace {

RvqConfig smallConfig() {
  RvqConfig c = test::quickTraining(RvqConfig{}, 256, 2, 8, 1000, 10, 100);
  c.kmeansIterations = 3;
  c.lloydIterations = 1;
  return c;
}

TEST(WorkEstimate, TrainingCountsEverySearch) {
  const RvqConfig c = smallConfig();
  // 5000 vectors subsampled to 1000: per stage (3 k-means + 1 Lloyd + 2 assignments)
  // x 1000 + 10 EMA steps x 100 = 7000 searches of 256 entries x 8 channels, 2 stages.
  EXPECT_DOUBLE_EQ(trainingWork(c, 5000), 7000.0 * 256 * 8 * 2);
  // Fewer vectors than a batch: the batch is the whole sample (50): 6 x 50 + 10 x 50.
  EXPECT_DOUBLE_EQ(trainingWork(c, 50), 800.0 * 256 * 8 * 2);
}

TEST(WorkEstimate, StudyAddsEvaluationPerLayerAndKind) {
  const RvqConfig c = smallConfig();
  DumpInfo info;
  info.headDim = 32;
  info.numKvHeads = 2;
  // 100 training tokens x 2 heads x 4 groups = 800 vectors: 6 x 800 + 10 x 100 = 5800
  // searches; 50 held-out tokens x 2 x 4 = 400 vectors encoded through 2 stages.
  const double train = 5800.0 * 256 * 8 * 2;
  const double eval = 400.0 * 256 * 8 * 2;
  EXPECT_DOUBLE_EQ(studyWork(c, info, 3, 2, 100, 50), 6 * (train + eval));
  // Per head: 2 quantizers of 100 x 4 = 400 vectors each (6 x 400 + 10 x 100 = 3400).
  RvqConfig perHead = c;
  perHead.perHead = true;
  EXPECT_DOUBLE_EQ(studyWork(perHead, info, 1, 1, 100, 50), 2 * 3400.0 * 256 * 8 * 2 + eval);
  // Beam search of width 4 encodes about 4 times the work.
  RvqConfig beam = c;
  beam.beamWidth = 4;
  EXPECT_DOUBLE_EQ(studyWork(beam, info, 1, 1, 100, 50), train + 4 * eval);
  // A group size that does not divide head_dim: no estimate.
  RvqConfig bad = c;
  bad.groupSize = 7;
  EXPECT_EQ(studyWork(bad, info, 1, 1, 100, 50), 0.0);
}

TEST(WorkEstimate, AttentionCountsEncodingAndEveryMethodsScores) {
  RvqConfig c;
  c.codebookSize = 4;
  c.depth = 2;
  c.groupSize = 2;
  DumpInfo info;
  info.tokens = 100;
  info.sequenceStarts = {0, 50};
  info.numKvHeads = 1;
  info.numQHeads = 2;
  info.headDim = 4;
  AttentionOptions a;
  a.enabled = true;
  a.rvqDepths = {1, 2};
  // Encoding: keys and values x 1 head x 100 tokens x 4 channels x K 2 x C 4 = 6400.
  // 20 held-out tokens (10 per sequence) queried, 2 query heads, each seeing about
  // 50 - 10/2 = 45 keys of 4 channels twice (scores, values), for the reference, RVQ at
  // depths 1 and 2, KIVI-2/3/4 with and without the window: 9 passes.
  const double perLayer = 6400.0 + 20.0 * 2 * 45 * 4 * 2 * 9;
  EXPECT_DOUBLE_EQ(attentionWork(c, a, info, 3, 20), 3 * perLayer);
  a.queriesPerLayer = 5;  // sampled: 5 of the 20
  EXPECT_DOUBLE_EQ(attentionWork(c, a, info, 1, 20), 6400.0 + 5.0 * 2 * 45 * 4 * 2 * 9);
  a.kiviWindow = false;  // reference, 2 depths, KIVI-2/4 without the window: 5 passes
  EXPECT_DOUBLE_EQ(attentionWork(c, a, info, 1, 20, {2, 4}), 6400.0 + 5.0 * 2 * 45 * 4 * 2 * 5);
  a.enabled = false;
  EXPECT_EQ(attentionWork(c, a, info, 1, 20), 0.0);
}

TEST(WorkEstimate, PreviewIsTheQuickRecipe) {
  const RvqConfig paper = presetConfig("paper");
  const RvqConfig p = previewConfig(paper);
  EXPECT_EQ(p.trainSample, 8192);
  EXPECT_EQ(p.kmeansIterations, 4);
  EXPECT_EQ(p.emaSteps, 16);
  EXPECT_EQ(p.batchSize, 8192);
  EXPECT_EQ(p.lloydIterations, 0);
  // The quantizer itself is unchanged.
  EXPECT_EQ(p.codebookSize, paper.codebookSize);
  EXPECT_EQ(p.depth, paper.depth);
  EXPECT_EQ(p.groupSize, paper.groupSize);
  EXPECT_EQ(p.seed, paper.seed);
  EXPECT_EQ(p.heldOutFraction, paper.heldOutFraction);
  // Four vectors per entry at least: C = 4096 keeps 16384.
  RvqConfig large = paper;
  large.codebookSize = 4096;
  EXPECT_EQ(previewConfig(large).trainSample, 16384);
  // Already quick: nothing grows.
  RvqConfig tiny = smallConfig();
  const RvqConfig t = previewConfig(tiny);
  EXPECT_EQ(t.trainSample, 1000);
  EXPECT_EQ(t.kmeansIterations, 3);
  EXPECT_EQ(t.emaSteps, 10);
  EXPECT_EQ(t.batchSize, 100);
}

TEST(WorkEstimate, NeighbourSizesNearestFirst) {
  EXPECT_EQ(neighbourSizes(32, 16, 16384),
            (std::vector<int>{16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}));
  EXPECT_EQ(neighbourSizes(2048, 16, 4096), (std::vector<int>{1024, 4096, 512, 256, 128, 64, 32, 16}));
  // Not a power of two: halves only while they divide exactly.
  EXPECT_EQ(neighbourSizes(48, 16, 200), (std::vector<int>{24, 96, 192}));
  EXPECT_TRUE(neighbourSizes(16, 16, 16).empty());
  EXPECT_TRUE(neighbourSizes(0, 16, 16384).empty());
}

TEST(WorkEstimate, StudyBytesCountCodebooksAndUsage) {
  // 3 quantizers x (2 x 256 entries x (8 float32 + one int64 count)).
  EXPECT_DOUBLE_EQ(studyBytes(smallConfig(), 3), 3.0 * (512 * 8 * 4 + 512 * 8));
}

TEST(WorkEstimate, ThroughputIsMeasured) {
  const auto backend = makeCpuBackend(1);
  const double throughput = measureThroughput(*backend);
  EXPECT_TRUE(std::isfinite(throughput));
  EXPECT_GT(throughput, 1e6);  // multiply-adds per second: any CPU does millions
}

}  // namespace
}  // namespace kvq
