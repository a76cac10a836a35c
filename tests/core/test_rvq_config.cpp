#include <gtest/gtest.h>

#include "kvq/base/error.h"
#include "kvq/rvq/rvq_config.h"

namespace kvq {
namespace {

std::string whereOf(const RvqConfig& config, int headDim) {
  try {
    validateConfig(config, headDim);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.where();
  }
  return "";
}

TEST(RvqConfig, PaperBitsAndRatio) {
  // 8 stages x 11 bits per 32 channels + a 16-bit scale per 128 channels.
  const double b = rvqBitsPerChannel(2048, 8, 32, 128);
  EXPECT_DOUBLE_EQ(b, 2.875);
  EXPECT_NEAR(compressionRatio(b), 5.565217391304348, 1e-12);
  EXPECT_DOUBLE_EQ(rvqBitsPerChannel(1024, 4, 64, 128), 4 * 10.0 / 64 + 0.125);
}

TEST(RvqConfig, Presets) {
  const RvqConfig paper = presetConfig("paper");
  EXPECT_EQ(paper.codebookSize, 2048);
  EXPECT_EQ(paper.depth, 8);
  EXPECT_EQ(paper.groupSize, 32);
  EXPECT_EQ(paper.keyGrouping, Grouping::Strided);
  EXPECT_EQ(paper.valueGrouping, Grouping::Contiguous);
  EXPECT_EQ(paper.init, KMeansInit::RandomPoints);
  EXPECT_EQ(paper.kmeansIterations, 10);
  EXPECT_EQ(paper.emaSteps, 200);
  EXPECT_EQ(paper.deadThreshold, 0.0);
  EXPECT_EQ(paper.lloydIterations, 0);
  EXPECT_EQ(paper.beamWidth, 1);
  EXPECT_EQ(paper.emaDecay, 0.99);
  EXPECT_EQ(paper.emaEpsilon, 1e-5);

  const RvqConfig fast = presetConfig("fast");
  EXPECT_EQ(fast.preset, "fast");
  EXPECT_LT(fast.trainSample, paper.trainSample);
  EXPECT_LT(fast.emaSteps, paper.emaSteps);

  const RvqConfig quality = presetConfig("quality");
  EXPECT_GT(quality.deadThreshold, 0.0);
  EXPECT_EQ(quality.lloydIterations, 3);
  EXPECT_EQ(quality.beamWidth, 4);
  EXPECT_THROW(presetConfig("nope"), Error);
  EXPECT_EQ(presetNames().size(), 3u);
  for (const std::string& name : presetNames()) EXPECT_NO_THROW(validateConfig(presetConfig(name), 128));
}

TEST(RvqConfig, ValidationNamesTheOption) {
  RvqConfig c;
  EXPECT_EQ(whereOf(c, 128), "");
  c.groupSize = 48;
  EXPECT_EQ(whereOf(c, 128), "--group-size");
  c = RvqConfig{};
  c.codebookSize = 1;
  EXPECT_EQ(whereOf(c, 128), "--codebook-size");
  c = RvqConfig{};
  c.depth = 0;
  EXPECT_EQ(whereOf(c, 128), "--depth");
  c = RvqConfig{};
  c.beamWidth = 0;
  EXPECT_EQ(whereOf(c, 128), "--beam");
  c = RvqConfig{};
  c.emaDecay = 1.0;
  EXPECT_EQ(whereOf(c, 128), "--ema-decay");
  c = RvqConfig{};
  c.trainSample = 100;
  EXPECT_EQ(whereOf(c, 128), "--train-sample");
  c = RvqConfig{};
  c.heldOutFraction = 1.0;
  EXPECT_EQ(whereOf(c, 128), "--held-out");
}

TEST(RvqConfig, Names) {
  EXPECT_EQ(parseGrouping("strided"), Grouping::Strided);
  EXPECT_EQ(parseGrouping("contiguous"), Grouping::Contiguous);
  EXPECT_STREQ(groupingName(Grouping::Strided), "strided");
  EXPECT_STREQ(kmeansInitName(KMeansInit::RandomPoints), "points");
  EXPECT_STREQ(kmeansInitName(KMeansInit::PlusPlus), "kmeans++");
  EXPECT_STREQ(kmeansInitName(KMeansInit::Progressive), "progressive");
  EXPECT_THROW(parseGrouping("diagonal"), Error);
}

}  // namespace
}  // namespace kvq
