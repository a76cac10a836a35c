// Attention metrics of a dump (study/attention_study): RoPE exactly as the dump
// says (pre- and post-RoPE dumps of the same activations agree, half and
// interleaved layouts, /rope_inv_freq), query sampling, stored query subsets, and
// the RVQ path through runStudy.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/model/rope.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/study/attention_study.h"
#include "kvq/study/quantize_study.h"
#include "test_util.h"

namespace kvq {
namespace {

constexpr int64_t kT = 200;  // two sequences: [0, 120) and [120, 200)
constexpr int kKv = 2, kQ = 4, kD = 16;
const std::vector<int64_t> kStarts{0, 120};

// Pre-RoPE activations with a structure RoPE matters for: keys share a direction.
struct Activations {
  std::vector<float> keys, values, queries;  // [T, H, D]
  Activations() {
    std::mt19937_64 rng(42);
    std::normal_distribution<float> n;
    auto fill = [&](std::vector<float>& x, int heads) {
      x.resize(static_cast<size_t>(kT * heads * kD));
      for (float& e : x) e = n(rng);
    };
    fill(keys, kKv);
    fill(values, kKv);
    fill(queries, kQ);
    for (int64_t i = 0; i < kT * kKv; ++i) keys[i * kD + 1] += 3.0f;
    for (int64_t i = 0; i < kT * kQ; ++i) queries[i * kD + 1] += 2.0f;
  }
};

// Rotation in double, written independently of kvq::applyRope.
std::vector<double> thetaFrequencies(double theta, int dim) {
  std::vector<double> f(static_cast<size_t>(dim / 2));
  for (int i = 0; i < dim / 2; ++i) f[i] = std::pow(theta, -2.0 * i / dim);
  return f;
}

void rotate(std::vector<float>& x, int heads, bool interleaved, const std::vector<double>& freq) {
  const int pairs = static_cast<int>(freq.size());
  for (int64_t t = 0; t < kT; ++t) {
    const int64_t pos = t - (t >= kStarts[1] ? kStarts[1] : 0);
    for (int h = 0; h < heads; ++h) {
      float* v = x.data() + (t * heads + h) * kD;
      for (int i = 0; i < pairs; ++i) {
        const int a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + pairs;
        const double c = std::cos(pos * freq[i]), s = std::sin(pos * freq[i]);
        const double va = v[a], vb = v[b];
        v[a] = static_cast<float>(va * c - vb * s);
        v[b] = static_cast<float>(vb * c + va * s);
      }
    }
  }
}

struct DumpSpec {
  std::string keyRope = "pre";
  std::optional<std::string> layout;
  std::vector<double> invFreq;       // written as /rope_inv_freq when not empty
  std::vector<int64_t> queryTokens;  // /query_positions (empty: every token)
};

std::string writeDump(const std::string& path, const Activations& a, const DumpSpec& spec) {
  DumpHeader h = test::dumpHeader("attention test", 1, kKv, kD, kT);
  h.numQHeads = kQ;
  h.keyRope = spec.keyRope;
  h.ropeTheta = 1000.0;
  h.ropeDim = 12;  // channels 12..15 are not rotated
  h.ropeLayout = spec.layout;
  h.ropeInvFreq = spec.invFreq;
  h.queryPositions = spec.queryTokens;
  auto w = DumpWriter::create(path, h);
  const Slab k = test::slabOf(kT, kKv, kD, a.keys), v = test::slabOf(kT, kKv, kD, a.values);
  Slab q = test::slabOf(kT, kQ, kD, a.queries);
  if (!spec.queryTokens.empty()) {
    Slab sub = test::slabOf(static_cast<int64_t>(spec.queryTokens.size()), kQ, kD, {});
    for (int64_t t : spec.queryTokens)
      sub.data.insert(sub.data.end(), q.vector(t, 0), q.vector(t, 0) + kQ * kD);
    q = sub;
  }
  w->writeLayer(0, k, v, &q);
  w->writeSequenceStarts(kStarts);
  w->commit();
  return path;
}

StudyOptions studyOptions(std::vector<int> bits = {}) {
  StudyOptions o;
  o.baselineBits = std::move(bits);
  o.baselineTokenGroup = 8;
  o.baselineChannelGroup = 8;
  return o;
}

AttentionResult measure(const std::string& path, const StudyOptions& so, AttentionOptions ao) {
  const auto reader = DumpReader::open(path);
  auto backend = makeCpuBackend();
  return measureAttention(*reader, {0}, {}, so, ao, *backend);
}

AttentionOptions exactOnly() {
  AttentionOptions ao;
  ao.includeExact = true;
  ao.recentWindow = 16;
  return ao;
}

void expectSameReference(const AttentionMethodResult& a, const AttentionMethodResult& b) {
  ASSERT_EQ(a.perHead.size(), b.perHead.size());
  for (size_t h = 0; h < a.perHead.size(); ++h) {
    const AttentionSums &x = a.perHead[h], &y = b.perHead[h];
    EXPECT_EQ(x.queries, y.queries);
    EXPECT_NEAR(x.outputEnergy, y.outputEnergy, 1e-4 * y.outputEnergy) << "head " << h;
    EXPECT_NEAR(x.logitEnergy, y.logitEnergy, 1e-4 * y.logitEnergy) << "head " << h;
    for (int r = 0; r < kKeyRegions; ++r)
      EXPECT_NEAR(x.regions[r].mass, y.regions[r].mass, 1e-4 * x.queries) << "head " << h << " region " << r;
  }
}

class PrePostRope : public ::testing::TestWithParam<bool> {};  // interleaved?

TEST_P(PrePostRope, SameAttentionForTheIdentity) {
  const bool interleaved = GetParam();
  const Activations pre;
  Activations post = pre;
  const std::vector<double> freq = thetaFrequencies(1000.0, 12);
  rotate(post.keys, kKv, interleaved, freq);
  rotate(post.queries, kQ, interleaved, freq);
  const auto dir = test::freshTempDir();
  DumpSpec preSpec;
  if (interleaved) preSpec.layout = "interleaved";
  DumpSpec postSpec = preSpec;
  postSpec.keyRope = "post";
  const AttentionResult a =
      measure(writeDump((dir / "pre.h5").string(), pre, preSpec), studyOptions(), exactOnly());
  const AttentionResult b =
      measure(writeDump((dir / "post.h5").string(), post, postSpec), studyOptions(), exactOnly());
  ASSERT_EQ(a.layers.size(), 1u);
  const AttentionMethodResult& ea = a.layers[0].methods[0];
  const AttentionMethodResult& eb = b.layers[0].methods[0];
  EXPECT_EQ(ea.method, "exact");
  EXPECT_EQ(ea.total.kl, 0.0);
  EXPECT_EQ(ea.total.outputErrorEnergy, 0.0);
  EXPECT_GT(ea.total.queries, 0);
  expectSameReference(ea, eb);

  // The wrong layout rotates the wrong pairs: the attention differs.
  DumpSpec wrong = preSpec;
  wrong.layout = interleaved ? "half" : "interleaved";
  const AttentionResult c =
      measure(writeDump((dir / "wrong.h5").string(), pre, wrong), studyOptions(), exactOnly());
  EXPECT_GT(std::abs(c.layers[0].methods[0].total.outputEnergy - eb.total.outputEnergy),
            1e-3 * eb.total.outputEnergy);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PrePostRope, ::testing::Bool(), [](const auto& p) {
  return p.param ? std::string("Interleaved") : std::string("Half");
});

TEST(AttentionStudy, RopeInvFreqOverridesTheta) {
  // Scaled frequencies (a Llama-3.1-like rescale of the slow pairs), stored in
  // /rope_inv_freq: a post dump rotated with them matches; theta alone does not.
  const Activations pre;
  std::vector<double> freq = thetaFrequencies(1000.0, 12);
  for (size_t i = 3; i < freq.size(); ++i) freq[i] /= 8.0;
  Activations post = pre;
  rotate(post.keys, kKv, false, freq);
  rotate(post.queries, kQ, false, freq);
  const auto dir = test::freshTempDir();
  DumpSpec scaled;
  scaled.invFreq = freq;
  DumpSpec postSpec;
  postSpec.keyRope = "post";
  const AttentionResult a =
      measure(writeDump((dir / "pre.h5").string(), pre, scaled), studyOptions(), exactOnly());
  const AttentionResult b =
      measure(writeDump((dir / "post.h5").string(), post, postSpec), studyOptions(), exactOnly());
  const AttentionResult c =
      measure(writeDump((dir / "theta.h5").string(), pre, {}), studyOptions(), exactOnly());
  expectSameReference(a.layers[0].methods[0], b.layers[0].methods[0]);
  EXPECT_NE(a.rope.find("/rope_inv_freq"), std::string::npos);
  EXPECT_GT(std::abs(c.layers[0].methods[0].total.outputEnergy - b.layers[0].methods[0].total.outputEnergy),
            1e-3 * b.layers[0].methods[0].total.outputEnergy);
}

TEST(AttentionStudy, StoredQuerySubsetGivesTheSameNumbers) {
  // The bundled sample's scheme: queries only for the held-out tail of each sequence.
  const Activations a;
  const auto dir = test::freshTempDir();
  const TokenSplit split = splitTokens(kT, kStarts, 0.25);
  DumpSpec tail;
  for (const TokenRange& r : split.heldOut) {
    for (int64_t t = r.begin; t < r.end; ++t) tail.queryTokens.push_back(t);
  }
  AttentionOptions ao = exactOnly();
  ao.queriesPerLayer = 0;  // every candidate
  const AttentionResult all = measure(writeDump((dir / "all.h5").string(), a, {}), studyOptions({2, 4}), ao);
  const AttentionResult sub =
      measure(writeDump((dir / "tail.h5").string(), a, tail), studyOptions({2, 4}), ao);
  ASSERT_EQ(all.layers[0].methods.size(), sub.layers[0].methods.size());
  EXPECT_EQ(all.layers[0].queryTokens, 30 + 20);
  EXPECT_EQ(sub.layers[0].candidates, all.layers[0].candidates);
  for (size_t m = 0; m < all.layers[0].methods.size(); ++m) {
    const AttentionSums &x = all.layers[0].methods[m].total, &y = sub.layers[0].methods[m].total;
    EXPECT_EQ(x.kl, y.kl) << all.layers[0].methods[m].method;
    EXPECT_EQ(x.outputErrorEnergy, y.outputErrorEnergy);
  }
}

TEST(AttentionStudy, KiviBitsCountTheWindowAtTheDumpsLength) {
  const Activations a;
  const auto dir = test::freshTempDir();
  const AttentionResult r =
      measure(writeDump((dir / "d.h5").string(), a, {}), studyOptions({2}), exactOnly());
  const auto& methods = r.layers[0].methods;  // exact, kivi-2, kivi-2 window
  ASSERT_EQ(methods.size(), 3u);
  EXPECT_EQ(methods[1].method, "kivi");
  EXPECT_DOUBLE_EQ(methods[1].bitsPerChannel, 2.0 + 32.0 / 8);
  // Window 16, sequences of 120 and 80 tokens, b + 32/n = 6: keys keep 120 mod 16 = 8 and
  // 80 mod 16 = 0 tokens at 16 bits, (112·6 + 8·16 + 80·6)/200 = 6.4; values the last 16 of
  // each, (104·6 + 64·6 + 2·16·16)/200 = 7.6; their mean 7.0.
  EXPECT_DOUBLE_EQ(methods[2].bitsPerChannel, 7.0);
  EXPECT_GT(methods[1].total.kl, methods[2].total.kl);  // the exact window helps
  EXPECT_GT(methods[1].total.kl, 0.0);
  // Keys are quantized a whole group of n_t = 8 at a time: a window of 12 is refused, and
  // accepted once KIVI's window is not measured.
  AttentionOptions odd = exactOnly();
  odd.recentWindow = 12;
  const std::string path = (dir / "d.h5").string();
  try {
    measure(path, studyOptions({2}), odd);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("multiple of the key token group 8"), std::string::npos) << e.what();
  }
  odd.kiviWindow = false;
  EXPECT_EQ(measure(path, studyOptions({2}), odd).layers[0].methods.size(), 2u);
}

TEST(AttentionStudy, SamplingIsStratifiedAndReproducible) {
  DumpInfo info;
  info.tokens = 1000;
  info.sequenceStarts = {0, 500};
  const TokenSplit split = splitTokens(1000, info.sequenceStarts, 0.2);  // [400, 500), [900, 1000)
  int64_t candidates = 0;
  const std::vector<int64_t> s = sampleQueryTokens(info, split, 10, 7, &candidates);
  EXPECT_EQ(candidates, 200);
  ASSERT_EQ(s.size(), 10u);
  for (size_t i = 0; i < s.size(); ++i) {  // one per stratum of 20 candidates
    const int64_t first = i < 5 ? 400 + 20 * static_cast<int64_t>(i) : 900 + 20 * static_cast<int64_t>(i - 5);
    EXPECT_GE(s[i], first);
    EXPECT_LT(s[i], first + 20);
  }
  EXPECT_EQ(s, sampleQueryTokens(info, split, 10, 7));
  EXPECT_NE(s, sampleQueryTokens(info, split, 10, 8));
  EXPECT_EQ(sampleQueryTokens(info, split, 500, 7).size(), 200u);  // more than there are: all
  info.queryPositions = {450, 451, 600, 950};
  EXPECT_EQ(sampleQueryTokens(info, split, 0, 7), (std::vector<int64_t>{450, 451, 950}));
}

TEST(AttentionStudy, RefusesDumpsWithoutQueriesOrRotation) {
  const Activations a;
  const auto dir = test::freshTempDir();
  const DumpHeader h = test::dumpHeader("no queries", 1, kKv, kD, kT);
  const std::string path = (dir / "noq.h5").string();
  auto w = DumpWriter::create(path, h);
  w->writeLayer(0, test::slabOf(kT, kKv, kD, a.keys), test::slabOf(kT, kKv, kD, a.values));
  w->commit();
  const auto reader = DumpReader::open(path);
  auto backend = makeCpuBackend();
  try {
    measureAttention(*reader, {0}, {}, studyOptions({2}), AttentionOptions{}, *backend);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("no selected layer stores queries"), std::string::npos) << e.what();
  }
}

TEST(AttentionStudy, RunStudyMeasuresRvqAtEveryRequestedDepth) {
  const Activations a;
  const auto dir = test::freshTempDir();
  const std::string path = writeDump((dir / "d.h5").string(), a, {});
  const auto reader = DumpReader::open(path);
  auto backend = makeCpuBackend();
  StudyOptions so = studyOptions({3});
  so.config = presetConfig("fast");
  so.config.codebookSize = 16;
  so.config.depth = 3;
  so.config.groupSize = 8;
  so.config.trainSample = 2000;
  so.attention.enabled = true;
  so.attention.rvqDepths = {1, 3};
  so.attention.recentWindow = 16;
  const StudyResult r = runStudy(*reader, so, *backend);
  ASSERT_EQ(r.attention.layers.size(), 1u);
  const auto& m = r.attention.layers[0].methods;  // rvq 1, rvq 3, kivi 3, kivi-window 3
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].method, "rvq");
  EXPECT_EQ(m[0].depth, 1);
  EXPECT_EQ(m[1].depth, 3);
  EXPECT_DOUBLE_EQ(m[1].bitsPerChannel, rvqBitsPerChannel(16, 3, 8, kD));
  EXPECT_EQ(m[0].perHead.size(), static_cast<size_t>(kQ));
  EXPECT_GT(m[0].total.outputRelativeError(), m[1].total.outputRelativeError());  // deeper is better
  EXPECT_GT(m[1].total.outputRelativeError(), 0.0);
  EXPECT_EQ(r.attention.total("rvq", 3).total.queries, m[1].total.queries);
}

}  // namespace
}  // namespace kvq
