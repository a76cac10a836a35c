#include <gtest/gtest.h>

#include "kvq/base/error.h"
#include "kvq/io/codebook_file.h"
#include "kvq/rvq/rvq_config.h"

#include <cmath>
#include <functional>
#include <limits>
#include <utility>

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
  const RvqConfig budget = presetConfig("budget");
  EXPECT_EQ(budget.codebookSize, 256);
  EXPECT_EQ(budget.groupSize, 8);
  EXPECT_EQ(budget.depth, 4);
  EXPECT_DOUBLE_EQ(rvqBitsPerChannel(budget.codebookSize, 1, budget.groupSize, 64), 1.25);  // 1 bit a stage
  const RvqConfig modelLoss = presetConfig("model-loss");  // budget + the levers that paid
  EXPECT_EQ(modelLoss.preset, "model-loss");
  EXPECT_EQ(modelLoss.codebookSize, 256);
  EXPECT_EQ(modelLoss.groupSize, 8);
  EXPECT_EQ(modelLoss.emaSteps, budget.emaSteps);
  EXPECT_TRUE(modelLoss.centerChannels);
  EXPECT_TRUE(modelLoss.queryAware);
  EXPECT_EQ(modelLoss.beamWidth, 4);
  EXPECT_FALSE(budget.centerChannels || budget.queryAware);
  EXPECT_EQ(presetNames().size(), 5u);
  for (const std::string& name : presetNames()) EXPECT_NO_THROW(validateConfig(presetConfig(name), 128));
}

TEST(RvqConfig, ValidationNamesTheField) {
  EXPECT_EQ(whereOf(RvqConfig{}, 128), "");
  // One bad value each, on the defaults: the field validation names.
  const std::pair<std::string, std::function<void(RvqConfig&)>> cases[] = {
      {"group_size", [](RvqConfig& c) { c.groupSize = 48; }},
      {"codebook_size", [](RvqConfig& c) { c.codebookSize = 1; }},
      {"depth", [](RvqConfig& c) { c.depth = 0; }},
      {"beam_width", [](RvqConfig& c) { c.beamWidth = 0; }},
      {"ema_decay", [](RvqConfig& c) { c.emaDecay = 1.0; }},
      {"train_sample", [](RvqConfig& c) { c.trainSample = 100; }},
      {"held_out_fraction", [](RvqConfig& c) { c.heldOutFraction = 1.0; }},
  };
  for (const auto& [field, breakIt] : cases) {
    RvqConfig c;
    breakIt(c);
    EXPECT_EQ(whereOf(c, 128), field);
  }
}

TEST(RvqConfig, ValidationMessagesComeFromTheRanges) {
  auto problemOf = [](const RvqConfig& c) -> std::string {
    try {
      validateConfig(c, 128);
    } catch (const Error& e) {
      return e.where() + ": " + e.problem();
    }
    return "";
  };
  RvqConfig c;
  c.codebookSize = 1 << 25;
  EXPECT_EQ(problemOf(c), "codebook_size: must be in [2, 16777216]");
  c = RvqConfig{};
  c.heldOutFraction = -0.5;
  EXPECT_EQ(problemOf(c), "held_out_fraction: must be in [0, 1)");
  c = RvqConfig{};
  c.emaEpsilon = 0.0;
  EXPECT_EQ(problemOf(c), "ema_epsilon: must be greater than 0");
  c.emaEpsilon = std::numeric_limits<double>::infinity();
  EXPECT_EQ(problemOf(c), "ema_epsilon: must be a finite number");
  c = RvqConfig{};
  c.lloydIterations = -1;
  EXPECT_EQ(problemOf(c), "lloyd_iterations: must be at least 0");
  c = RvqConfig{};
  c.deadThreshold = std::nan("");
  EXPECT_EQ(problemOf(c), "dead_threshold: must be a finite number");
}

// The table is the struct: every field's value reads back through it, in the order
// of the codebook file's attributes, and set() writes the member it reads.
TEST(RvqConfig, FieldTableReadsAndWritesEveryMember) {
  const FieldTable<RvqConfig>& table = rvqConfigTable();
  std::vector<std::string> names;
  for (const auto& f : table) names.push_back(f.spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"preset",
                                             "codebook_size",
                                             "depth",
                                             "group_size",
                                             "key_grouping",
                                             "value_grouping",
                                             "per_head",
                                             "train_sample",
                                             "init",
                                             "kmeans_iterations",
                                             "ema_decay",
                                             "ema_epsilon",
                                             "ema_steps",
                                             "batch_size",
                                             "dead_threshold",
                                             "lloyd_iterations",
                                             "refine_rounds",
                                             "query_aware",
                                             "center_channels",
                                             "beam_width",
                                             "train_beam",
                                             "held_out_fraction",
                                             "seed"}));
  RvqConfig quality = presetConfig("quality");
  quality.seed = ~uint64_t{0};  // the full unsigned range survives
  quality.keyGrouping = Grouping::Contiguous;
  quality.refineRounds = 3;
  quality.queryAware = true;
  quality.centerChannels = true;
  quality.trainBeam = 5;
  RvqConfig copy;
  std::vector<std::optional<FieldValue>> values;
  for (const FieldValue& v : valuesOf(table, quality)) values.emplace_back(v);
  assignValues(table, values, copy);
  EXPECT_EQ(fieldsToJson(table, copy), fieldsToJson(table, quality));
  EXPECT_EQ(copy.seed, quality.seed);
  EXPECT_EQ(copy.init, KMeansInit::PlusPlus);
  EXPECT_EQ(copy.keyGrouping, Grouping::Contiguous);
  EXPECT_EQ(copy.deadThreshold, quality.deadThreshold);
  EXPECT_EQ(copy.beamWidth, 4);
  EXPECT_EQ(copy.refineRounds, 3);
  EXPECT_TRUE(copy.queryAware);
  EXPECT_TRUE(copy.centerChannels);
  EXPECT_EQ(copy.trainBeam, 5);
  // JSON keeps each field's type: a flag is a boolean, the seed unsigned.
  EXPECT_NE(configToJson(quality).find("\"per_head\":false"), std::string::npos) << configToJson(quality);
  EXPECT_NE(configToJson(quality).find("\"seed\":18446744073709551615"), std::string::npos);
  // An integer beyond 32 bits names its field instead of wrapping.
  try {
    table[2].set(copy, FieldValue(int64_t{1} << 33));
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "depth");
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
  }
}

TEST(RvqConfig, Names) {
  EXPECT_EQ(parseGrouping("strided"), Grouping::Strided);
  EXPECT_EQ(parseGrouping("non-contiguous"), Grouping::Strided);  // the paper's word, an alias
  EXPECT_EQ(parseGrouping("contiguous"), Grouping::Contiguous);
  EXPECT_STREQ(groupingName(Grouping::Strided), "strided");
  EXPECT_STREQ(kmeansInitName(KMeansInit::RandomPoints), "points");
  EXPECT_STREQ(kmeansInitName(KMeansInit::PlusPlus), "kmeans++");
  EXPECT_STREQ(kmeansInitName(KMeansInit::Progressive), "progressive");
  EXPECT_EQ(parseKMeansInit("kmeans++"), KMeansInit::PlusPlus);
  EXPECT_EQ(namesOf<Grouping>(), (std::vector<std::string>{"contiguous", "strided"}));
  EXPECT_EQ(acceptedNamesOf<Grouping>(),
            (std::vector<std::string>{"contiguous", "strided", "non-contiguous"}));
  EXPECT_EQ(parseKind("values"), Kind::Values);
  EXPECT_STREQ(kindName(Kind::Queries), "queries");
  try {
    parseGrouping("diagonal", "key_grouping");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.where(), "key_grouping");
    EXPECT_EQ(e.problem(), "unknown key_grouping 'diagonal' (expected contiguous or strided)");
  }
  EXPECT_THROW(parseKind("queries ", "kinds"), Error);
}

}  // namespace
}  // namespace kvq
