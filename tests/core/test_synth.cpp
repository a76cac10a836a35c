// Synthetic dumps: deterministic in the seed, LLM-like structure (key outlier
// channels dominate mean |x|, consecutive key tokens correlate, values do not),
// and written through DumpWriter so the reader sees the expected rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "kvq/base/half.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/synth.h"
#include "test_util.h"

namespace kvq {
namespace {

SynthOptions options(uint64_t seed) {
  SynthOptions o;
  o.layers = 3;
  o.kvHeads = 2;
  o.headDim = 32;
  o.tokens = 1500;
  o.seed = seed;
  return o;
}

std::vector<char> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(Synth, SameSeedSameBytesDifferentSeedDiffers) {
  Slab k1, v1, k2, v2, k3, v3;
  synthLayer(options(7), 1, k1, v1);
  synthLayer(options(7), 1, k2, v2);
  synthLayer(options(8), 1, k3, v3);
  EXPECT_EQ(k1.data, k2.data);
  EXPECT_EQ(v1.data, v2.data);
  EXPECT_NE(k1.data, k3.data);
  EXPECT_NE(v1.data, v3.data);
  Slab k4, v4;
  synthLayer(options(7), 2, k4, v4);  // layers differ from each other too
  EXPECT_NE(k1.data, k4.data);

  const std::filesystem::path dir = test::freshTempDir();
  const std::string a = (dir / "a.h5").string(), b = (dir / "b.h5").string(), c = (dir / "c.h5").string();
  writeSynthDump(a, options(7));
  writeSynthDump(b, options(7));
  writeSynthDump(c, options(8));
  EXPECT_EQ(fileBytes(a), fileBytes(b));  // no timestamps in the files
  EXPECT_NE(fileBytes(a), fileBytes(c));
}

TEST(Synth, KeyOutlierChannelsHaveTheLargestMeanAbs) {
  const SynthOptions o = options(3);
  for (int layer = 0; layer < o.layers; ++layer) {
    Slab keys, values;
    synthLayer(o, layer, keys, values);
    for (int h = 0; h < o.kvHeads; ++h) {
      const std::vector<int> outliers = synthKeyOutlierChannels(o, layer, h);
      ASSERT_GE(outliers.size(), 2u);
      ASSERT_LE(outliers.size(), 4u);
      std::vector<double> meanAbs(static_cast<size_t>(o.headDim), 0.0);
      for (int64_t t = 0; t < keys.tokens; ++t) {
        for (int c = 0; c < o.headDim; ++c) meanAbs[static_cast<size_t>(c)] += std::fabs(keys.at(t, h, c));
      }
      std::vector<int> order(meanAbs.size());
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        return meanAbs[static_cast<size_t>(a)] > meanAbs[static_cast<size_t>(b)];
      });
      std::vector<int> top(order.begin(), order.begin() + static_cast<long>(outliers.size()));
      std::sort(top.begin(), top.end());
      EXPECT_EQ(top, outliers) << "layer " << layer << " head " << h;
      // And by a wide margin: at least 3x the largest ordinary channel.
      const double weakestOutlier = meanAbs[static_cast<size_t>(order[outliers.size() - 1])];
      const double strongestOther = meanAbs[static_cast<size_t>(order[outliers.size()])];
      EXPECT_GT(weakestOutlier, 3.0 * strongestOther) << "layer " << layer << " head " << h;
    }
  }
}

// Pearson correlation of x[t] and x[t+1] over one channel of one head.
double lagOneCorrelation(const Slab& s, int head, int channel) {
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  const auto n = static_cast<double>(s.tokens - 1);
  for (int64_t t = 0; t + 1 < s.tokens; ++t) {
    const double x = s.at(t, head, channel), y = s.at(t + 1, head, channel);
    sx += x;
    sy += y;
    sxx += x * x;
    syy += y * y;
    sxy += x * y;
  }
  const double cov = sxy / n - (sx / n) * (sy / n);
  return cov / std::sqrt((sxx / n - (sx / n) * (sx / n)) * (syy / n - (sy / n) * (sy / n)));
}

TEST(Synth, KeysCorrelateAcrossTokensValuesDoNot) {
  const SynthOptions o = options(11);
  Slab keys, values;
  synthLayer(o, 0, keys, values);
  // Low-frequency pair members (largest i < D/2) rotate slowly: strong lag-1 correlation.
  const std::vector<int> outliers = synthKeyOutlierChannels(o, 0, 0);
  int channel = o.headDim / 2 - 1;
  while (std::find(outliers.begin(), outliers.end(), channel) != outliers.end()) --channel;
  EXPECT_GT(lagOneCorrelation(keys, 0, channel), 0.6);
  for (int c = 0; c < 4; ++c) EXPECT_LT(std::fabs(lagOneCorrelation(values, 1, c)), 0.1);
}

TEST(Synth, WrittenDumpReadsBackAsHalf) {
  SynthOptions o = options(5);
  o.queries = true;
  const std::string path = (test::freshTempDir() / "synth.h5").string();
  writeSynthDump(path, o);
  const auto reader = DumpReader::open(path);
  const DumpInfo& info = reader->info();
  EXPECT_EQ(info.model, "synthetic (kvq synth)");
  EXPECT_NE(info.source.find("seed 5"), std::string::npos) << info.source;
  EXPECT_EQ(info.dtype, DType::Float16);
  EXPECT_EQ(info.layers, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(info.keyRope, "post");
  EXPECT_EQ(info.ropeTheta.value_or(0), 10000.0);
  EXPECT_TRUE(info.hasQueries);
  EXPECT_EQ(info.numQHeads, o.kvHeads);
  Slab keys, values, queries;
  synthLayer(o, 2, keys, values);
  synthQueries(o, 2, queries);
  const Slab k = reader->read(2, Kind::Keys), v = reader->read(2, Kind::Values),
             q = reader->read(2, Kind::Queries);
  for (size_t i = 0; i < keys.data.size(); ++i) {
    ASSERT_EQ(k.data[i], roundToHalf(keys.data[i]));
    ASSERT_EQ(v.data[i], roundToHalf(values.data[i]));
    ASSERT_EQ(q.data[i], roundToHalf(queries.data[i]));
  }
  EXPECT_NE(queries.data, keys.data);
}

}  // namespace
}  // namespace kvq
