// Attention metrics: a hand-worked case, the identity, causality across sequences
// and tokens, blocking, and a brute-force double-precision reference of every sum.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kvq/attention/attention_metrics.h"
#include "kvq/base/error.h"
#include "kvq/model/rope.h"

namespace kvq {
namespace {

// Queries of one kv-head group; owns its arrays.
struct QuerySet {
  std::vector<float> data;  // [n, G, D]
  std::vector<int64_t> positions, starts;
  int heads = 1;
  AttentionQueries view() const {
    return {data.data(), heads, positions.data(), starts.data(), static_cast<int64_t>(positions.size())};
  }
};

AttentionSums runOne(const AttentionSettings& s, int64_t T, int D, const std::vector<float>& k,
                     const std::vector<float>& v, const AttentionVariant& var, const QuerySet& q,
                     int head = 0) {
  std::vector<std::vector<AttentionSums>> sums;
  accumulateAttention(s, T, D, k.data(), v.data(), {var}, q.view(), sums);
  return sums[0][static_cast<size_t>(head)];
}

// ---- the hand-worked case -----------------------------------------------------------
// One head, D = 2, scale 1, query q = (1, 0) at token 2 of a 3-token sequence.
// keys k0 = (0, 5), k1 = (ln 2, 0), k2 = (ln 3, 1): logits s = (0, ln 2, ln 3),
// p = (1/6, 1/3, 1/2). values v0 = (6, 0), v1 = (0, 3), v2 = (2, 2): o = (2, 2).
// The variant changes k1 to (0, 0) and v2 to (2, 0): s~ = (0, 0, ln 3),
// p~ = (0.2, 0.2, 0.6), o~ = (2.4, 0.6).
struct HandCase {
  std::vector<float> k{0, 5, std::log(2.0f), 0, std::log(3.0f), 1};
  std::vector<float> v{6, 0, 0, 3, 2, 2};
  std::vector<float> kt{0, 5, 0, 0, std::log(3.0f), 1};
  std::vector<float> vt{6, 0, 0, 3, 2, 0};
  QuerySet q{{1, 0}, {2}, {0}, 1};
  AttentionSettings settings() const {
    AttentionSettings s;
    s.scale = 1.0;
    s.topK = 1;
    s.recentWindow = 1;  // recent = {2}, sink = {0}, rest = {1}
    return s;
  }
};

TEST(AttentionMetrics, HandWorkedThreeTokens) {
  const HandCase c;
  const AttentionSums s = runOne(c.settings(), 3, 2, c.k, c.v, {c.kt.data(), c.vt.data(), false}, c.q);
  const double ln2 = std::log(2.0), ln3 = std::log(3.0);
  EXPECT_EQ(s.queries, 1);
  EXPECT_EQ(s.keys, 3);
  // ||o - o~||^2 = 0.4^2 + 1.4^2 = 2.12 of ||o||^2 = 8.
  EXPECT_NEAR(s.outputErrorEnergy, 2.12, 1e-5);
  EXPECT_NEAR(s.outputEnergy, 8.0, 1e-5);
  EXPECT_NEAR(s.outputRelativeError(), 0.265, 1e-6);
  // KL = (1/6 + 1/2) log(5/6) + (1/3) log(5/3).
  const double kl = (2.0 / 3.0) * std::log(5.0 / 6.0) + std::log(5.0 / 3.0) / 3.0;
  EXPECT_NEAR(s.meanKl(), kl, 1e-6);
  EXPECT_NEAR(s.logitRelativeError(), ln2 * ln2 / (ln2 * ln2 + ln3 * ln3), 1e-6);
  EXPECT_NEAR(s.massRecall(), 0.5, 1e-6);  // top-1 of p~ is key 2, p_2 = 1/2
  // Regions: KL parts add up to the KL; output errors of each contribution.
  const auto& sink = s.regions[0];
  const auto& recent = s.regions[1];
  const auto& rest = s.regions[2];
  EXPECT_NEAR(sink.mass, 1.0 / 6.0, 1e-6);
  EXPECT_NEAR(recent.mass, 0.5, 1e-6);
  EXPECT_NEAR(rest.mass, 1.0 / 3.0, 1e-6);
  EXPECT_NEAR(sink.kl, std::log(5.0 / 6.0) / 6.0, 1e-6);
  EXPECT_NEAR(recent.kl, std::log(5.0 / 6.0) / 2.0, 1e-6);
  EXPECT_NEAR(rest.kl, std::log(5.0 / 3.0) / 3.0, 1e-6);
  EXPECT_NEAR(sink.outputErrorEnergy, 0.04, 1e-5);    // (1, 0) vs (1.2, 0)
  EXPECT_NEAR(recent.outputErrorEnergy, 1.04, 1e-5);  // (1, 1) vs (1.2, 0)
  EXPECT_NEAR(rest.outputErrorEnergy, 0.16, 1e-5);    // (0, 1) vs (0, 0.6)
  EXPECT_NEAR(rest.logitErrorEnergy, ln2 * ln2, 1e-6);
  EXPECT_EQ(sink.logitErrorEnergy + recent.logitErrorEnergy, 0.0);
  EXPECT_NEAR(s.regionRecall(KeyRegion::Recent), 1.0, 1e-6);
  EXPECT_EQ(s.regionRecall(KeyRegion::Rest), 0.0);
  EXPECT_EQ(sink.keys + recent.keys + rest.keys, 3);
}

TEST(AttentionMetrics, TopTwoTieGoesToTheRecentKey) {
  const HandCase c;
  AttentionSettings st = c.settings();
  st.topK = 2;  // s~ = (0, 0, ln 3): key 2, then key 1 wins the tie with key 0
  const AttentionSums s = runOne(st, 3, 2, c.k, c.v, {c.kt.data(), c.vt.data(), false}, c.q);
  EXPECT_NEAR(s.massRecall(), 0.5 + 1.0 / 3.0, 1e-6);
  EXPECT_EQ(s.regions[0].recalledMass, 0.0);
}

TEST(AttentionMetrics, KiviWindowKeysByWholeGroupsValuesSliding) {
  // KIVI's window R with m = 3 keys read. R = 2: keys are quantized 2 at a time, so only
  // key 2 (from floor(3/2)·2 on) is exact and k1 stays changed: p~ = (0.2, 0.2, 0.6) and the
  // KL is the windowless one; values slide, so v1 and v2 are exact:
  // o~ = 0.2 (6, 0) + 0.2 (0, 3) + 0.6 (2, 2) = (2.4, 1.8), ||o - o~||^2 = 0.16 + 0.04.
  const HandCase c;
  AttentionSettings st = c.settings();
  st.recentWindow = 2;
  const AttentionSums s = runOne(st, 3, 2, c.k, c.v, {c.kt.data(), c.vt.data(), true}, c.q);
  EXPECT_NEAR(s.outputErrorEnergy, 0.2, 1e-5);
  EXPECT_NEAR(s.meanKl(), (2.0 / 3.0) * std::log(5.0 / 6.0) + std::log(5.0 / 3.0) / 3.0, 1e-6);
  // R = 4: no whole group of 4 yet, so every key and value is exact.
  st.recentWindow = 4;
  const AttentionSums all = runOne(st, 3, 2, c.k, c.v, {c.kt.data(), c.vt.data(), true}, c.q);
  EXPECT_EQ(all.outputErrorEnergy, 0.0);
  EXPECT_EQ(all.kl, 0.0);
}

// ---- random cases against a double-precision brute force ----------------------------

struct RandomCase {
  int64_t T = 300;
  int D = 20;  // not a multiple of 16: exercises the padding
  int G = 3;
  std::vector<int64_t> seqStarts{0, 120, 131};
  std::vector<float> k, v, kt, vt;
  QuerySet q;

  explicit RandomCase(uint64_t seed, int64_t tokens = 300) : T(tokens) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    auto fill = [&](std::vector<float>& x, size_t size, float scale) {
      x.resize(size);
      for (float& e : x) e = scale * n(rng);
    };
    fill(k, static_cast<size_t>(T * D), 1.5f);
    fill(v, static_cast<size_t>(T * D), 1.0f);
    kt = k;
    vt = v;
    for (float& e : kt) e += 0.2f * n(rng);
    for (float& e : vt) e += 0.1f * n(rng);
    for (int64_t t = 0; t < T; ++t) {
      k[t * D] += 4.0f;  // a common direction: heavy, uneven attention
    }
    q.heads = G;
    for (int64_t t = 5; t < T; t += 7) {
      q.positions.push_back(t);
      q.starts.push_back(t >= 131 ? 131 : t >= 120 ? 120 : 0);
    }
    fill(q.data, q.positions.size() * G * D, 1.0f);
    for (size_t i = 0; i < q.positions.size() * G; ++i) q.data[i * D] += 1.0f;
  }
};

// Every sum of one query row by definition, in double.
void bruteRow(const AttentionSettings& st, const RandomCase& c, const AttentionVariant& var, size_t qi, int g,
              AttentionSums& out) {
  const int D = c.D;
  const int64_t s0 = c.q.starts[qi], m = c.q.positions[qi] - s0 + 1;
  const float* q = c.q.data.data() + (qi * c.G + g) * D;
  auto logitsOf = [&](const float* keys) {
    std::vector<double> s(static_cast<size_t>(m));
    for (int64_t j = 0; j < m; ++j) {
      double dot = 0;
      for (int d = 0; d < D; ++d)
        dot += static_cast<double>(q[d] * static_cast<float>(st.scale)) * keys[(s0 + j) * D + d];
      s[j] = dot;
    }
    return s;
  };
  // KIVI's window: keys from floor(m/R)·R on, the last R values (docs/metrics.md).
  const int64_t keyWin = m / st.recentWindow * st.recentWindow,
                valueWin = std::max<int64_t>(0, m - st.recentWindow),
                recentBegin = std::max<int64_t>(1, m - st.recentWindow);
  std::vector<double> s = logitsOf(c.k.data()), st2 = logitsOf(var.keys);
  if (var.exactWindow) {
    for (int64_t j = keyWin; j < m; ++j) st2[j] = s[j];
  }
  auto softmax = [](const std::vector<double>& x) {
    const double mx = *std::max_element(x.begin(), x.end());
    std::vector<double> p(x.size());
    double sum = 0;
    for (size_t j = 0; j < x.size(); ++j) sum += p[j] = std::exp(x[j] - mx);
    for (double& e : p) e /= sum;
    return p;
  };
  const std::vector<double> p = softmax(s), pt = softmax(st2);
  auto region = [&](int64_t j) { return j == 0 ? 0 : j >= recentBegin ? 1 : 2; };
  std::vector<double> o(D, 0), ot(D, 0), oR[3], otR[3];
  for (int r = 0; r < 3; ++r) oR[r].assign(D, 0), otR[r].assign(D, 0);
  for (int64_t j = 0; j < m; ++j) {
    const int r = region(j);
    const float* vj = c.v.data() + (s0 + j) * D;
    const float* vtj = (var.exactWindow && j >= valueWin ? c.v.data() : var.values) + (s0 + j) * D;
    for (int d = 0; d < D; ++d) {
      o[d] += p[j] * vj[d];
      ot[d] += pt[j] * vtj[d];
      oR[r][d] += p[j] * vj[d];
      otR[r][d] += pt[j] * vtj[d];
    }
    auto& reg = out.regions[static_cast<size_t>(r)];
    reg.mass += p[j];
    reg.kl += p[j] * std::log(p[j] / pt[j]);
    reg.logitErrorEnergy += (s[j] - st2[j]) * (s[j] - st2[j]);
    reg.logitEnergy += s[j] * s[j];
    reg.keys += 1;
    out.kl += p[j] * std::log(p[j] / pt[j]);
    out.logitErrorEnergy += (s[j] - st2[j]) * (s[j] - st2[j]);
    out.logitEnergy += s[j] * s[j];
  }
  std::vector<int64_t> order(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) order[j] = j;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return st2[a] > st2[b] || (st2[a] == st2[b] && a > b); });
  for (int64_t i = 0; i < std::min<int64_t>(st.topK, m); ++i) {
    out.recalledMass += p[order[i]];
    out.regions[static_cast<size_t>(region(order[i]))].recalledMass += p[order[i]];
  }
  for (int d = 0; d < D; ++d) {
    out.outputErrorEnergy += (o[d] - ot[d]) * (o[d] - ot[d]);
    out.outputEnergy += o[d] * o[d];
    for (int r = 0; r < 3; ++r)
      out.regions[r].outputErrorEnergy += (oR[r][d] - otR[r][d]) * (oR[r][d] - otR[r][d]);
  }
  out.queries += 1;
  out.keys += m;
}

void expectClose(double a, double b, double rel, const char* what) {
  EXPECT_NEAR(a, b, rel * std::max(1.0, std::abs(b))) << what;
}

void expectSumsClose(const AttentionSums& a, const AttentionSums& b, double rel) {
  EXPECT_EQ(a.queries, b.queries);
  EXPECT_EQ(a.keys, b.keys);
  expectClose(a.outputErrorEnergy, b.outputErrorEnergy, rel, "output error");
  expectClose(a.outputEnergy, b.outputEnergy, rel, "output energy");
  expectClose(a.kl, b.kl, rel, "kl");
  expectClose(a.logitErrorEnergy, b.logitErrorEnergy, rel, "logit error");
  expectClose(a.logitEnergy, b.logitEnergy, rel, "logit energy");
  expectClose(a.recalledMass, b.recalledMass, rel, "recall");
  for (int r = 0; r < kKeyRegions; ++r) {
    const auto &x = a.regions[r], &y = b.regions[r];
    expectClose(x.mass, y.mass, rel, "region mass");
    expectClose(x.kl, y.kl, rel, "region kl");
    expectClose(x.recalledMass, y.recalledMass, rel, "region recall");
    expectClose(x.logitErrorEnergy, y.logitErrorEnergy, rel, "region logit error");
    expectClose(x.outputErrorEnergy, y.outputErrorEnergy, rel, "region output error");
    EXPECT_EQ(x.keys, y.keys);
  }
}

TEST(AttentionMetrics, MatchesDoubleBruteForce) {
  const RandomCase c(7);
  AttentionSettings st;
  st.scale = 1.0 / std::sqrt(20.0);
  st.topK = 5;
  st.recentWindow = 16;
  const std::vector<AttentionVariant> vars{{c.kt.data(), c.vt.data(), false},
                                           {c.kt.data(), c.vt.data(), true}};
  std::vector<std::vector<AttentionSums>> sums;
  accumulateAttention(st, c.T, c.D, c.k.data(), c.v.data(), vars, c.q.view(), sums);
  for (size_t vi = 0; vi < vars.size(); ++vi) {
    for (int g = 0; g < c.G; ++g) {
      AttentionSums want;
      for (size_t i = 0; i < c.q.positions.size(); ++i) bruteRow(st, c, vars[vi], i, g, want);
      SCOPED_TRACE("variant " + std::to_string(vi) + " head " + std::to_string(g));
      expectSumsClose(sums[vi][g], want, 2e-4);
    }
  }
}

TEST(AttentionMetrics, IdentityGivesZeroErrorAndZeroKl) {
  const RandomCase c(11);
  AttentionSettings st;
  st.scale = 0.3;
  const std::vector<float> kCopy = c.k, vCopy = c.v;  // other arrays, same numbers
  std::vector<std::vector<AttentionSums>> sums;
  accumulateAttention(st, c.T, c.D, c.k.data(), c.v.data(),
                      {{c.k.data(), c.v.data(), false},
                       {kCopy.data(), vCopy.data(), false},
                       {kCopy.data(), vCopy.data(), true}},
                      c.q.view(), sums);
  for (const auto& variant : sums) {
    for (const AttentionSums& s : variant) {
      EXPECT_EQ(s.outputErrorEnergy, 0.0);
      EXPECT_EQ(s.kl, 0.0);
      EXPECT_EQ(s.logitErrorEnergy, 0.0);
      EXPECT_GT(s.outputEnergy, 0.0);
      for (const auto& r : s.regions) EXPECT_EQ(r.outputErrorEnergy, 0.0);
    }
  }
}

TEST(AttentionMetrics, NeverReadsLaterTokensOrOtherSequences) {
  // The variant differs from the exact keys and values only where no query may
  // look: after each query's token and before its sequence's start.
  RandomCase c(3);
  c.q.positions = {40, 119, 125, 200, 299};
  c.q.starts = {0, 0, 120, 131, 131};
  c.q.data.resize(c.q.positions.size() * c.G * c.D, 0.5f);
  AttentionSettings st;
  st.scale = 0.25;
  std::vector<std::vector<AttentionSums>> sums;
  for (size_t i = 0; i < c.q.positions.size(); ++i) {
    QuerySet one;
    one.heads = c.G;
    one.positions = {c.q.positions[i]};
    one.starts = {c.q.starts[i]};
    one.data.assign(c.q.data.begin() + static_cast<int64_t>(i) * c.G * c.D,
                    c.q.data.begin() + static_cast<int64_t>(i + 1) * c.G * c.D);
    std::vector<float> kt = c.k, vt = c.v;
    for (int64_t t = 0; t < c.T; ++t) {
      if (t >= one.starts[0] && t <= one.positions[0]) continue;
      for (int d = 0; d < c.D; ++d) {
        kt[t * c.D + d] = 1e3f;  // would swamp the softmax if it were read
        vt[t * c.D + d] = -1e4f;
      }
    }
    sums.clear();
    accumulateAttention(st, c.T, c.D, c.k.data(), c.v.data(), {{kt.data(), vt.data(), false}}, one.view(),
                        sums);
    for (const AttentionSums& s : sums[0]) {
      EXPECT_EQ(s.outputErrorEnergy, 0.0) << "query at " << one.positions[0];
      EXPECT_EQ(s.kl, 0.0);
      EXPECT_EQ(s.keys, one.positions[0] - one.starts[0] + 1);
    }
  }
}

TEST(AttentionMetrics, BlockSizeDoesNotChangeTheResult) {
  const RandomCase c(5, 700);
  AttentionSettings big, small;
  big.scale = small.scale = 0.2;
  small.blockFloats = 1;  // one query per block
  const std::vector<AttentionVariant> vars{{c.kt.data(), c.vt.data(), false}};
  std::vector<std::vector<AttentionSums>> a, b;
  accumulateAttention(big, c.T, c.D, c.k.data(), c.v.data(), vars, c.q.view(), a);
  accumulateAttention(small, c.T, c.D, c.k.data(), c.v.data(), vars, c.q.view(), b);
  for (int g = 0; g < c.G; ++g) expectSumsClose(a[0][g], b[0][g], 1e-12);
}

// ---- RoPE -------------------------------------------------------------------------

// The shared rotation (kvq/model/rope.h) in both layouts the dump format names.
TEST(RopeLayouts, HalfAndInterleavedPairTheirChannels) {
  // D = 6, rope_dim = 4 (two pairs), channels 4 and 5 pass through.
  const std::vector<double> invFreq{0.5, 0.125};
  const std::vector<float> x{1, 2, 3, 4, 5, 6};
  auto rotated = [&](RopeLayout layout) {
    std::vector<float> y = x;
    applyRope(y.data(), 1, 1, 6, 6, 3, invFreq, layout);  // position 3
    return y;
  };
  // Channels i and j of y: the pair (x[i], x[j]) turned by angle.
  auto expectTurned = [&](const std::vector<float>& y, size_t i, size_t j, double angle) {
    const double a = x[i], b = x[j];
    EXPECT_NEAR(y[i], a * std::cos(angle) - b * std::sin(angle), 1e-6);
    EXPECT_NEAR(y[j], b * std::cos(angle) + a * std::sin(angle), 1e-6);
  };
  const std::vector<float> half = rotated(RopeLayout::Half);  // pairs (0, 2), (1, 3)
  expectTurned(half, 0, 2, 1.5);
  expectTurned(half, 1, 3, 0.375);
  const std::vector<float> inter = rotated(RopeLayout::Interleaved);  // pairs (0, 1), (2, 3)
  expectTurned(inter, 0, 1, 1.5);
  expectTurned(inter, 2, 3, 0.375);
  for (const auto& y : {half, inter}) {
    EXPECT_EQ(y[4], 5.0f);
    EXPECT_EQ(y[5], 6.0f);
  }
  EXPECT_EQ(parseRopeLayout("interleaved", "rope_layout"), RopeLayout::Interleaved);
  EXPECT_STREQ(ropeLayoutName(RopeLayout::Half), "half");
  EXPECT_THROW(parseRopeLayout("neox", "rope_layout"), Error);
}

TEST(RopeLayouts, InterleavedDotProductDependsOnlyOnTheOffset) {
  RopeConfig config;
  config.theta = 100000.0;
  config.dim = 8;
  const std::vector<double> invFreq = ropeInverseFrequencies(config);
  const std::vector<float> q0{0.3f, -1.0f, 2.0f, 0.5f, 1.5f, -0.2f, 0.7f, 1.1f};
  const std::vector<float> k0{1.0f, 0.4f, -0.6f, 2.2f, 0.1f, 0.9f, -1.3f, 0.5f};
  auto dot = [&](int64_t pq, int64_t pk) {
    std::vector<float> q = q0, k = k0;
    applyRope(q.data(), 1, 1, 8, 8, pq, invFreq, RopeLayout::Interleaved);
    applyRope(k.data(), 1, 1, 8, 8, pk, invFreq, RopeLayout::Interleaved);
    double s = 0;
    for (int d = 0; d < 8; ++d) s += static_cast<double>(q[d]) * k[d];
    return s;
  };
  EXPECT_NEAR(dot(10, 3), dot(1007, 1000), 1e-4);
  EXPECT_NEAR(dot(0, 0), dot(500, 500), 1e-4);
}

}  // namespace
}  // namespace kvq
