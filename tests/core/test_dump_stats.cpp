// Dump statistics against hand-worked values (a tiny dump) and a brute-force
// two-pass reference (a larger dump with a large mean, streamed in small chunks).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/dump/dump_json.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/dump/dump_writer.h"
#include "test_util.h"

namespace kvq {
namespace {

DumpHeader header(int heads, int dim, int64_t tokens) {
  return test::dumpHeader("stats test", 1, heads, dim, tokens);
}

// Keys [T=5, H=2, D=2]: head 0 has {-2,-1,0,1,2} in both channels; head 1 has
// channel 0 = {0,0,0,0,10}, channel 1 = {3,3,3,3,3}.
//   head 0: mean|x| = 6/5, m2 = 2, m4 = 34/5, kurtosis = 6.8/4 - 3 = -1.3, max 2
//   head 1: mean = 2.5, m2 = 8.25, m4 = 332.0625, kurtosis = 161/33 - 3 = 62/33,
//           mean|x| = 25/10, max 10
//   channels: mean|x| ch0 = (6 + 10)/10 = 1.6, ch1 = (6 + 15)/10 = 2.1 -> order [1, 0]
std::string writeHandDump() {
  const std::string path = (test::freshTempDir() / "hand.h5").string();
  const std::vector<float> head0 = {-2, -1, 0, 1, 2};
  const std::vector<float> h1c0 = {0, 0, 0, 0, 10};
  std::vector<float> keys;
  for (int t = 0; t < 5; ++t) {
    keys.insert(keys.end(), {head0[static_cast<size_t>(t)], head0[static_cast<size_t>(t)],
                             h1c0[static_cast<size_t>(t)], 3.0f});
  }
  std::vector<float> values(20, -0.5f);  // constant: std 0, kurtosis reported as 0
  auto writer = DumpWriter::create(path, header(2, 2, 5));
  writer->writeLayer(0, test::slabOf(5, 2, 2, keys), test::slabOf(5, 2, 2, values));
  writer->commit();
  return path;
}

TEST(DumpStats, HandWorkedSmallDump) {
  const auto reader = DumpReader::open(writeHandDump());
  for (int64_t chunk : {int64_t{1}, int64_t{2}, int64_t{4096}}) {  // merging must not change anything
    const std::vector<LayerStats> stats = computeDumpStats(*reader, nullptr, chunk);
    ASSERT_EQ(stats.size(), 1u);
    const KindStats& k = stats[0].keys;
    ASSERT_EQ(k.perHead.size(), 2u);
    EXPECT_EQ(k.perHead[0].count, 10);
    EXPECT_NEAR(k.perHead[0].meanAbs, 1.2, 1e-12);
    EXPECT_NEAR(k.perHead[0].std, std::sqrt(2.0), 1e-12);
    EXPECT_EQ(k.perHead[0].maxAbs, 2.0);
    EXPECT_NEAR(k.perHead[0].excessKurtosis, -1.3, 1e-12);
    EXPECT_NEAR(k.perHead[1].meanAbs, 2.5, 1e-12);
    EXPECT_NEAR(k.perHead[1].std, std::sqrt(8.25), 1e-12);
    EXPECT_EQ(k.perHead[1].maxAbs, 10.0);
    EXPECT_NEAR(k.perHead[1].excessKurtosis, 62.0 / 33.0, 1e-12);
    // All 20 key values: mean 1.25; brute force for m2/m4 written out by hand.
    const std::vector<double> all = {-2, -1, 0, 1, 2, -2, -1, 0, 1, 2, 0, 0, 0, 0, 10, 3, 3, 3, 3, 3};
    double m2 = 0, m4 = 0;
    for (double x : all) {
      m2 += (x - 1.25) * (x - 1.25) / 20.0;
      m4 += std::pow(x - 1.25, 4) / 20.0;
    }
    EXPECT_EQ(k.all.count, 20);
    EXPECT_NEAR(k.all.meanAbs, 37.0 / 20.0, 1e-12);
    EXPECT_NEAR(k.all.std, std::sqrt(m2), 1e-12);
    EXPECT_EQ(k.all.maxAbs, 10.0);
    EXPECT_NEAR(k.all.excessKurtosis, m4 / (m2 * m2) - 3.0, 1e-12);
    ASSERT_EQ(k.channelMeanAbs.size(), 2u);
    EXPECT_NEAR(k.channelMeanAbs[0], 1.6, 1e-12);
    EXPECT_NEAR(k.channelMeanAbs[1], 2.1, 1e-12);
    EXPECT_EQ(k.channelMaxAbs, (std::vector<double>{10.0, 3.0}));
    EXPECT_EQ(k.outlierChannels, (std::vector<int>{1, 0}));
    const KindStats& v = stats[0].values;
    EXPECT_NEAR(v.all.meanAbs, 0.5, 1e-12);
    EXPECT_EQ(v.all.std, 0.0);
    EXPECT_EQ(v.all.excessKurtosis, 0.0);
  }
}

// Larger dump: per-channel magnitudes designed so the top-8 order is known, a
// large common offset (1000) that breaks naive sum-of-powers kurtosis, and a
// brute-force two-pass long double reference.
TEST(DumpStats, MatchesBruteForceOnStreamedData) {
  constexpr int kHeads = 3, kDim = 16;
  constexpr int64_t kTokens = 3001;
  std::vector<float> keys(static_cast<size_t>(kTokens * kHeads * kDim));
  std::vector<float> values(keys.size());
  uint64_t state = 12345;
  auto next = [&] {  // xorshift: deterministic, library independent
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<double>(state >> 11) * 0x1.0p-53 - 0.5;
  };
  // channel c has amplitude (c * 7 % 16) + 1: distinct, so the order is known.
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto c = static_cast<int>(i % kDim);
    keys[i] = static_cast<float>(((c * 7) % 16 + 1) * next());
    values[i] = static_cast<float>(1000.0 + next() * next() * 8.0);
  }
  const std::string path = (test::freshTempDir() / "big.h5").string();
  auto writer = DumpWriter::create(path, header(kHeads, kDim, kTokens));
  writer->writeLayer(0, test::slabOf(kTokens, kHeads, kDim, keys),
                     test::slabOf(kTokens, kHeads, kDim, values));
  writer->commit();
  const auto reader = DumpReader::open(path);
  const std::vector<LayerStats> stats = computeDumpStats(*reader, nullptr, 64);

  auto reference = [&](const std::vector<float>& data, int head) {
    long double n = 0, sum = 0, sumAbs = 0, maxAbs = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      if (head >= 0 && static_cast<int>((i / kDim) % kHeads) != head) continue;
      n += 1;
      sum += data[i];
      sumAbs += std::fabs(data[i]);
      maxAbs = std::max<long double>(maxAbs, std::fabs(data[i]));
    }
    const long double mean = sum / n;
    long double m2 = 0, m4 = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      if (head >= 0 && static_cast<int>((i / kDim) % kHeads) != head) continue;
      const long double d = data[i] - mean;
      m2 += d * d;
      m4 += d * d * d * d;
    }
    m2 /= n;
    m4 /= n;
    ValueStats s;
    s.count = static_cast<int64_t>(n);
    s.meanAbs = static_cast<double>(sumAbs / n);
    s.std = static_cast<double>(std::sqrt(m2));
    s.maxAbs = static_cast<double>(maxAbs);
    s.excessKurtosis = static_cast<double>(m4 / (m2 * m2) - 3);
    return s;
  };
  auto expectClose = [](const ValueStats& got, const ValueStats& want, const char* what) {
    EXPECT_EQ(got.count, want.count) << what;
    EXPECT_NEAR(got.meanAbs, want.meanAbs, 1e-9 * want.meanAbs) << what;
    EXPECT_NEAR(got.std, want.std, 1e-9 * want.std) << what;
    EXPECT_EQ(got.maxAbs, want.maxAbs) << what;
    EXPECT_NEAR(got.excessKurtosis, want.excessKurtosis, 1e-7) << what;
  };
  const KindStats& k = stats[0].keys;
  const KindStats& v = stats[0].values;
  expectClose(k.all, reference(keys, -1), "keys all");
  expectClose(v.all, reference(values, -1), "values all");
  for (int h = 0; h < kHeads; ++h) {
    expectClose(k.perHead[static_cast<size_t>(h)], reference(keys, h), "keys head");
    expectClose(v.perHead[static_cast<size_t>(h)], reference(values, h), "values head");
  }
  // Analytic values, a check on the reference itself. Keys of a head: a scale
  // mixture of U(-a/2, a/2), a = 1..16: E x^2 = mean(a^2)/12 = 93.5/12,
  // E x^4 = mean(a^4)/80 = 15240.5/80 -> excess 190.50625/60.7100694 - 3 = 0.1380.
  // Values: 1000 + 8 U1 U2: excess of a product of uniforms = (1/80)^2/(1/12)^4 - 3 = 0.24.
  EXPECT_NEAR(k.perHead[0].excessKurtosis, 0.1380, 0.05);
  EXPECT_NEAR(v.all.excessKurtosis, 0.24, 0.08);
  // Amplitudes (c*7 % 16) + 1 are a permutation of 1..16 (7 is coprime to 16), so
  // the outlier order is decreasing amplitude; sampling noise (~1%) cannot swap them.
  std::vector<int> expected(kDim);
  std::iota(expected.begin(), expected.end(), 0);
  std::stable_sort(expected.begin(), expected.end(),
                   [](int a, int b) { return (a * 7) % 16 > (b * 7) % 16; });
  expected.resize(8);
  EXPECT_EQ(k.outlierChannels, expected);
  for (int c = 0; c < kDim; ++c) {
    long double sumAbs = 0, maxAbs = 0;
    for (size_t i = static_cast<size_t>(c); i < keys.size(); i += kDim) {
      sumAbs += std::fabs(keys[i]);
      maxAbs = std::max<long double>(maxAbs, std::fabs(keys[i]));
    }
    EXPECT_NEAR(k.channelMeanAbs[static_cast<size_t>(c)], static_cast<double>(sumAbs / (kTokens * kHeads)),
                1e-12);
    EXPECT_EQ(k.channelMaxAbs[static_cast<size_t>(c)], static_cast<double>(maxAbs));
  }
}

TEST(DumpStats, ReportsProgressAndCancels) {
  const auto reader = DumpReader::open(writeHandDump());
  std::vector<double> fractions;
  TaskControl control;
  control.onProgress = [&](double f, const std::string&) { fractions.push_back(f); };
  computeDumpStats(*reader, &control, 1);
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);

  std::atomic<bool> cancel{true};
  control.cancel = &cancel;
  try {
    computeDumpStats(*reader, &control, 1);
    FAIL() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cancelled);
  }
}

TEST(DumpStats, JsonDocument) {
  const auto reader = DumpReader::open(writeHandDump());
  const nlohmann::json j = dumpInfoToJson(reader->info(), computeDumpStats(*reader));
  EXPECT_EQ(j.at("model"), "stats test");
  EXPECT_EQ(j.at("dtype"), "float32");
  EXPECT_EQ(j.at("tokens"), 5);
  EXPECT_EQ(j.at("num_kv_heads"), 2);
  EXPECT_EQ(j.at("head_dim"), 2);
  EXPECT_EQ(j.at("key_rope"), "pre");
  EXPECT_TRUE(j.at("rope_theta").is_null());
  EXPECT_TRUE(j.at("rope_dim").is_null());
  EXPECT_TRUE(j.at("num_q_heads").is_null());
  EXPECT_EQ(j.at("layers_present"), nlohmann::json::array({0}));
  EXPECT_FALSE(j.at("has_queries").get<bool>());
  ASSERT_EQ(j.at("layers").size(), 1u);
  const nlohmann::json& keys = j.at("layers")[0].at("keys");
  EXPECT_EQ(j.at("layers")[0].at("layer"), 0);
  EXPECT_NEAR(keys.at("per_head")[1].at("excess_kurtosis").get<double>(), 62.0 / 33.0, 1e-12);
  EXPECT_EQ(keys.at("outlier_channels"), nlohmann::json::array({1, 0}));
  EXPECT_EQ(keys.at("channel_max_abs"), nlohmann::json::array({10.0, 3.0}));
  EXPECT_EQ(keys.at("count"), 20);
  EXPECT_TRUE(j.at("layers")[0].at("values").contains("std"));
}

}  // namespace
}  // namespace kvq
