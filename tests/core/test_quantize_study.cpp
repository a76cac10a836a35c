// The layer pipeline on small synthetic dumps: split, training, metrics by depth,
// codebook size, grouping, evaluation of stored quantizers, progress and cancel.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include <random>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/study/quantize_study.h"
#include "kvq/study/report.h"
#include "kvq/study/sweep.h"
#include "quick_training.h"
#include "synth_dump.h"
#include "test_util.h"

namespace kvq {
namespace {

class StudyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_dir = new std::string(test::freshTempDir("study").string());
    test::writeSynthDumpOf(*s_dir + "/synth.h5", 1, 2, 64, 1024, 7);
  }
  static void TearDownTestSuite() { delete s_dir; }

  static std::unique_ptr<DumpReader> open() { return DumpReader::open(*s_dir + "/synth.h5"); }

  static StudyOptions smallOptions(int C, int K) {
    StudyOptions o;
    o.config = test::quickTraining(presetConfig("fast"), C, K, 16, 4000, 10);
    o.config.heldOutFraction = 0.25;
    return o;
  }

  static std::string* s_dir;
  std::unique_ptr<Backend> m_backend = makeCpuBackend(1);
};
std::string* StudyTest::s_dir = nullptr;

TEST(TokenSplit, TailOfEachSequenceIsHeldOut) {
  // Sequences [0,40) and [40,100): 10 and 15 tokens held out.
  const TokenSplit s = splitTokens(100, {0, 40}, 0.25);
  ASSERT_EQ(s.train.size(), 2u);
  ASSERT_EQ(s.heldOut.size(), 2u);
  EXPECT_EQ(s.train[0].begin, 0);
  EXPECT_EQ(s.train[0].end, 30);
  EXPECT_EQ(s.heldOut[0].begin, 30);
  EXPECT_EQ(s.heldOut[0].end, 40);
  EXPECT_EQ(s.train[1].begin, 40);
  EXPECT_EQ(s.train[1].end, 85);
  EXPECT_EQ(s.heldOut[1].begin, 85);
  EXPECT_EQ(s.heldOut[1].end, 100);
  EXPECT_EQ(s.trainTokens, 75);
  EXPECT_EQ(s.heldOutTokens, 25);
  EXPECT_TRUE(s.perSequence);
}

TEST(TokenSplit, WholeDumpWithoutSequenceStartsAndNoSplitAtZero) {
  const TokenSplit s = splitTokens(10, {}, 0.3);
  EXPECT_EQ(s.trainTokens, 7);
  EXPECT_EQ(s.heldOut[0].begin, 7);
  const TokenSplit all = splitTokens(10, {}, 0.0);
  EXPECT_EQ(all.trainTokens, 10);
  EXPECT_EQ(all.heldOutTokens, 10);
  EXPECT_THROW(splitTokens(10, {}, 1.0), Error);
  EXPECT_THROW(splitTokens(1, {}, 0.2), Error);  // rounds to no held-out token
}

TEST_F(StudyTest, ErrorFallsWithDepthAndHeldOutIsDisjoint) {
  const auto reader = open();
  const StudyResult r = runStudy(*reader, smallOptions(32, 4), *m_backend);
  ASSERT_EQ(r.jobs.size(), 2u);
  // Held-out tokens are the tail 256 of 1024, never trained on.
  ASSERT_EQ(r.split.train.size(), 1u);
  EXPECT_EQ(r.split.train[0].end, 768);
  EXPECT_EQ(r.split.heldOut[0].begin, 768);
  for (const LayerKindResult& job : r.jobs) {
    ASSERT_EQ(job.byDepth.size(), 4u);
    for (int k = 1; k < 4; ++k)
      EXPECT_LT(job.byDepth[k].relativeError(), job.byDepth[k - 1].relativeError()) << k;
    EXPECT_LT(job.error().relativeError(), 1.0);
    EXPECT_EQ(job.error().vectors, 256 * 2);
    EXPECT_EQ(job.evalVectors, 256 * 2);
    // Per-head sums add up to the whole.
    ASSERT_EQ(job.perHeadByDepth.size(), 2u);
    EXPECT_NEAR(job.perHeadByDepth[0][3].errorEnergy + job.perHeadByDepth[1][3].errorEnergy,
                job.error().errorEnergy, 1e-9 * job.error().errorEnergy);
    // Usage: every held-out group vector counted once per stage.
    ASSERT_EQ(job.quantizers.size(), 1u);
    ASSERT_EQ(job.quantizers[0].usage.size(), 4u);
    EXPECT_EQ(job.quantizers[0].usage[0].total, 256 * 2 * 4);
    EXPECT_GT(job.quantizers[0].usage[0].fractionUsed, 0.5);
    // Baselines at 2, 3, 4 bits: error falls with bits.
    ASSERT_EQ(job.baselines.size(), 3u);
    EXPECT_GT(job.baselines[0].error.relativeError(), job.baselines[2].error.relativeError());
    EXPECT_DOUBLE_EQ(job.baselines[0].bitsPerChannel, 3.0);
    // b = 4*5/16 + 16/64
    EXPECT_DOUBLE_EQ(job.bitsPerChannel, 1.5);
  }
}

TEST_F(StudyTest, LargerCodebooksReconstructBetter) {
  const auto reader = open();
  StudyOptions small = smallOptions(8, 2), large = smallOptions(128, 2);
  small.baselineBits.clear();
  large.baselineBits.clear();
  const StudyResult a = runStudy(*reader, small, *m_backend);
  const StudyResult b = runStudy(*reader, large, *m_backend);
  for (size_t j = 0; j < a.jobs.size(); ++j) {
    EXPECT_LT(b.jobs[j].error().relativeError(), a.jobs[j].error().relativeError()) << j;
  }
}

// Keys whose variance sits in a block of adjacent channels (56..63, 10x the std
// of the rest), as large-magnitude key channels cluster in real models. Contiguous
// groups put the whole block in one group, so the shared codebook spends one
// group's bits on most of the energy; strided groups spread it evenly.
std::string writeOutlierDump(const std::string& dir) {
  const std::string path = dir + "/outliers.h5";
  const DumpHeader header = test::dumpHeader("test: clustered outlier channels", 1, 2, 64, 1024);
  Slab keys;
  keys.tokens = 1024;
  keys.heads = 2;
  keys.dim = 64;
  keys.data.resize(1024 * 2 * 64);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  for (size_t i = 0; i < keys.data.size(); ++i) keys.data[i] = normal(rng) * (i % 64 >= 56 ? 10.0f : 1.0f);
  Slab values = keys;
  auto writer = DumpWriter::create(path, header);
  writer->writeLayer(0, keys, values);
  writer->commit();
  return path;
}

TEST_F(StudyTest, StridedBeatsContiguousOnKeysWithOutlierChannels) {
  const auto reader = DumpReader::open(writeOutlierDump(*s_dir));
  StudyOptions strided = smallOptions(64, 2), contiguous = smallOptions(64, 2);
  strided.kinds = contiguous.kinds = {Kind::Keys};
  strided.baselineBits.clear();
  contiguous.baselineBits.clear();
  contiguous.config.keyGrouping = Grouping::Contiguous;
  const StudyResult s = runStudy(*reader, strided, *m_backend);
  const StudyResult c = runStudy(*reader, contiguous, *m_backend);
  // Measured: 0.061 strided vs 0.270 contiguous (fast preset, C = 64, K = 2, g = 16).
  EXPECT_LT(s.jobs[0].error().relativeError(), 0.5 * c.jobs[0].error().relativeError());
}

TEST_F(StudyTest, StoredQuantizersReproduceTheMetrics) {
  const auto reader = open();
  StudyOptions o = smallOptions(16, 3);
  o.config.perHead = true;
  const StudyResult trained = runStudy(*reader, o, *m_backend);
  ASSERT_EQ(trained.jobs[0].quantizers.size(), 2u);
  EXPECT_EQ(trained.jobs[0].quantizers[1].head, 1);
  const StudyResult again = evaluateCodebooks(*reader, quantizerSets(trained), "", o, *m_backend);
  ASSERT_EQ(again.jobs.size(), trained.jobs.size());
  for (size_t j = 0; j < again.jobs.size(); ++j) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_DOUBLE_EQ(again.jobs[j].byDepth[k].errorEnergy, trained.jobs[j].byDepth[k].errorEnergy);
    }
    EXPECT_EQ(again.jobs[j].quantizers[0].usage[0].histogram,
              trained.jobs[j].quantizers[0].usage[0].histogram);
    EXPECT_DOUBLE_EQ(again.jobs[j].baselines[1].error.errorEnergy,
                     trained.jobs[j].baselines[1].error.errorEnergy);
  }
}

TEST_F(StudyTest, TrainingIsDeterministicInTheSeed) {
  const auto reader = open();
  StudyOptions o = smallOptions(16, 2);
  o.kinds = {Kind::Values};
  const StudyResult a = runStudy(*reader, o, *m_backend);
  const StudyResult b = runStudy(*reader, o, *m_backend);
  EXPECT_EQ(a.jobs[0].quantizers[0].codebooks.data, b.jobs[0].quantizers[0].codebooks.data);
}

TEST_F(StudyTest, SweepReadsEveryDepthFromOneTraining) {
  const auto reader = open();
  StudyOptions o = smallOptions(16, 3);
  o.kinds = {Kind::Values};
  const SweepResult s = runSweep(*reader, o, {8, 32}, {1, 3}, *m_backend);
  ASSERT_EQ(s.studies.size(), 2u);
  EXPECT_EQ(s.studies[0].config.depth, 3);
  int rvq = 0, kivi = 0;
  for (const SweepPoint& p : s.points) {
    if (p.method == "rvq" && p.layer == -1) {
      ++rvq;
      const StudyResult& study = p.codebookSize == 8 ? s.studies[0] : s.studies[1];
      EXPECT_DOUBLE_EQ(p.error.errorEnergy, study.jobs[0].byDepth[p.depth - 1].errorEnergy);
    }
    if (p.method == "kivi" && p.layer == -1) ++kivi;
  }
  EXPECT_EQ(rvq, 4);   // 2 sizes x 2 depths
  EXPECT_EQ(kivi, 3);  // b = 2, 3, 4
}

TEST_F(StudyTest, ReportsCarryEveryDepthHeadAndBaseline) {
  const auto reader = open();
  StudyOptions o = smallOptions(16, 2);
  const StudyResult r = runStudy(*reader, o, *m_backend);
  const nlohmann::json j = studyToJson(r);
  ASSERT_EQ(j["jobs"].size(), 2u);
  const auto& job = j["jobs"][1];
  EXPECT_EQ(job["kind"], "values");
  EXPECT_EQ(job["grouping"], "contiguous");
  ASSERT_EQ(job["by_depth"].size(), 2u);
  EXPECT_DOUBLE_EQ(job["by_depth"][1]["relative_error"].get<double>(), r.jobs[1].error().relativeError());
  ASSERT_EQ(job["per_head"].size(), 2u);
  ASSERT_EQ(job["baselines"].size(), 3u);
  EXPECT_EQ(job["quantizers"][0]["usage"][0]["histogram"].size(), 16u);
  EXPECT_EQ(j["split"]["held_out"][0][0], 768);
  EXPECT_EQ(j["config"]["codebook_size"], 16);
  // CSV: per job K x (1 + H) rvq rows + 3 kivi rows; then K "all layers" rows per kind.
  const std::string csv = studyToCsv(r);
  std::istringstream lines(csv);
  std::string line;
  int rows = -1;  // header
  while (std::getline(lines, line)) ++rows;
  EXPECT_EQ(rows, 2 * (2 * 3 + 3) + 2 * 2);
  EXPECT_NE(csv.find("0,values,all,kivi,,,2,32,3,"), std::string::npos);
}

// A zero signal with a nonzero error has SNR -inf: CSV writes "-inf" (it wrote
// "nan"), JSON null; the exact case stays "inf".
TEST_F(StudyTest, CsvWritesMinusInfForZeroSignalSnr) {
  const auto reader = open();
  StudyResult r = runStudy(*reader, smallOptions(8, 1), *m_backend);
  ErrorSums zeroSignal;
  zeroSignal.errorEnergy = 2.0;
  zeroSignal.vectors = 4;
  r.jobs[0].byDepth.back() = zeroSignal;
  ErrorSums exact;
  exact.signalEnergy = 3.0;
  exact.cosineSum = 4.0;
  exact.vectors = 4;
  r.jobs[1].byDepth.back() = exact;
  const std::string csv = studyToCsv(r);
  EXPECT_NE(csv.find("0,keys,all,rvq,8,1,,16,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(",inf,-inf,0,4\n"), std::string::npos) << csv;  // relative error, SNR, cosine, n
  EXPECT_NE(csv.find(",0,inf,1,4\n"), std::string::npos) << csv;     // the exact one
  EXPECT_EQ(csv.find("nan"), std::string::npos) << csv;
  const nlohmann::json j = errorToJson(zeroSignal);
  EXPECT_TRUE(j["snr_db"].is_null());
  EXPECT_TRUE(j["relative_error"].is_null());
}

TEST_F(StudyTest, BadOptionsNameTheOption) {
  const auto reader = open();
  StudyOptions o = smallOptions(16, 2);
  o.config.groupSize = 24;
  try {
    runStudy(*reader, o, *m_backend);
    FAIL() << "expected BadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.where(), "group_size");
  }
  o = smallOptions(16, 2);
  o.layers = {3};
  EXPECT_THROW(runStudy(*reader, o, *m_backend), Error);
}

// --chunk-tokens and --train-sample at INT64_MAX used to overflow their rounding;
// now they mean "the whole dump" / "every vector" and give the same metrics.
TEST_F(StudyTest, HugeChunkAndSampleMeanEverything) {
  const auto reader = open();
  StudyOptions o = smallOptions(8, 1);
  o.kinds = {Kind::Values};
  o.config.trainSample = 1 << 20;  // more than the dump holds: every training vector
  const StudyResult small = runStudy(*reader, o, *m_backend);
  o.chunkTokens = std::numeric_limits<int64_t>::max();
  o.config.trainSample = std::numeric_limits<int64_t>::max();
  const StudyResult huge = runStudy(*reader, o, *m_backend);
  ASSERT_EQ(huge.jobs.size(), 1u);
  EXPECT_EQ(huge.jobs[0].quantizers[0].codebooks.data, small.jobs[0].quantizers[0].codebooks.data);
  EXPECT_EQ(huge.jobs[0].evalVectors, small.jobs[0].evalVectors);
  EXPECT_NEAR(huge.jobs[0].error().errorEnergy, small.jobs[0].error().errorEnergy,
              1e-9 * small.jobs[0].error().errorEnergy);
}

TEST_F(StudyTest, StoredQuantizerMismatchNamesTheCodebookFile) {
  const auto reader = open();
  StudyOptions o = smallOptions(8, 1);
  std::vector<QuantizerSet> sets = quantizerSets(runStudy(*reader, o, *m_backend));
  sets[0].channelOrder.pop_back();
  try {
    evaluateCodebooks(*reader, sets, "books.h5", o, *m_backend);
    FAIL() << "expected BadInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), "books.h5");
    EXPECT_EQ(e.where(), "layer 0 keys");
  }
}

// A float32 dump with values far beyond fp16 (the stored scales' type): every
// metric stays finite (scales saturate, KIVI scale/zero clamp) instead of NaN.
TEST(StudyHugeValues, Float32DumpBeyondHalfRangeGivesFiniteMetrics) {
  const std::string path = (test::freshTempDir() / "huge.h5").string();
  const DumpHeader header = test::dumpHeader("huge", 1, 2, 16, 256);
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  auto slab = [&](float scale) {
    Slab s;
    s.tokens = header.tokens;
    s.heads = header.numKvHeads;
    s.dim = header.headDim;
    s.data.resize(static_cast<size_t>(s.tokens) * s.heads * s.dim);
    for (float& v : s.data) v = scale * nd(rng);
    return s;
  };
  auto writer = DumpWriter::create(path, header);
  writer->writeLayer(0, slab(1e6f), slab(1e9f));
  writer->commit();
  const auto reader = DumpReader::open(path);
  StudyOptions o;
  o.config = test::quickTraining(presetConfig("fast"), 8, 2, 8, 1000, 5);
  o.baselineChannelGroup = 8;
  auto backend = makeCpuBackend(1);
  const StudyResult r = runStudy(*reader, o, *backend);
  ASSERT_EQ(r.jobs.size(), 2u);
  for (const LayerKindResult& job : r.jobs) {
    EXPECT_TRUE(std::isfinite(job.error().relativeError())) << kindName(job.kind);
    EXPECT_TRUE(std::isfinite(job.error().snrDb())) << kindName(job.kind);
    for (const BaselineResult& b : job.baselines) {
      EXPECT_TRUE(std::isfinite(b.error.relativeError())) << kindName(job.kind) << " " << b.bits;
    }
  }
}

// A float32 dump of one layer, 2 heads, D = 16, 512 tokens: standard normals plus, when offset,
// a constant per head and channel (o = 3 (h + 1) sin(c + 1), as pre-RoPE key channels carry
// large constant parts in real models).
std::string writeShiftedDump(const std::string& path, bool offset) {
  const DumpHeader header = test::dumpHeader("shifted", 1, 2, 16, 512);
  Slab s;
  s.tokens = header.tokens;
  s.heads = header.numKvHeads;
  s.dim = header.headDim;
  s.data.resize(static_cast<size_t>(s.tokens) * s.heads * s.dim);
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (size_t i = 0; i < s.data.size(); ++i) {
    const int c = static_cast<int>(i % 16), h = static_cast<int>(i / 16 % 2);
    s.data[i] =
        nd(rng) + (offset ? 3.0f * static_cast<float>(h + 1) * std::sin(static_cast<float>(c + 1)) : 0.0f);
  }
  auto writer = DumpWriter::create(path, header);
  writer->writeLayer(0, s, s);
  writer->commit();
  return path;
}

TEST_F(StudyTest, CentredChannelsStoreTheTrainingMeansAndIgnoreAShift) {
  const auto plain = DumpReader::open(writeShiftedDump(*s_dir + "/unshifted.h5", false));
  const auto shifted = DumpReader::open(writeShiftedDump(*s_dir + "/shifted.h5", true));
  StudyOptions o;
  o.config = test::quickTraining(presetConfig("fast"), 16, 2, 8, 4000, 5);
  o.kinds = {Kind::Keys};
  o.baselineBits.clear();
  StudyOptions centred = o;
  centred.config.centerChannels = true;
  const StudyResult a = runStudy(*plain, centred, *m_backend);
  const StudyResult b = runStudy(*shifted, centred, *m_backend);
  const StudyResult raw = runStudy(*shifted, o, *m_backend);
  // The stored means are each head's channel means over the 384 training tokens (brute force).
  const Slab x = shifted->read(0, Kind::Keys, 0, 384);
  ASSERT_EQ(b.jobs[0].channelMeans.size(), 32u);
  EXPECT_TRUE(raw.jobs[0].channelMeans.empty());
  for (int h = 0; h < 2; ++h) {
    for (int c = 0; c < 16; ++c) {
      double sum = 0;
      for (int64_t t = 0; t < 384; ++t) sum += x.vector(t, h)[c];
      EXPECT_NEAR(b.jobs[0].channelMeans[static_cast<size_t>(h * 16 + c)], sum / 384, 1e-5) << h << " " << c;
    }
  }
  // Centred, the offset is invisible: the same error energy (up to float rounding of the shift),
  // where the uncentred quantizer spends its codes on it.
  const double ea = a.jobs[0].error().errorEnergy, eb = b.jobs[0].error().errorEnergy;
  EXPECT_NEAR(eb, ea, 1e-3 * ea);
  EXPECT_LT(eb, 0.8 * raw.jobs[0].error().errorEnergy);
  // The means are storage: 2 x 16 float32 more than the uncentred quantizer's, amortised over the
  // dump's 512 tokens x 2 heads x 16 channels.
  EXPECT_DOUBLE_EQ(b.jobs[0].codebookBits - raw.jobs[0].codebookBits, 32.0 * 32);
  EXPECT_DOUBLE_EQ(b.jobs[0].amortisedBitsPerChannel - raw.jobs[0].amortisedBitsPerChannel,
                   32.0 * 32 / (512.0 * 2 * 16));
  // Stored (shared, then per-head quantizers) they reproduce the metrics.
  for (bool perHead : {false, true}) {
    StudyOptions p = centred;
    p.config.perHead = perHead;
    const StudyResult trained = perHead ? runStudy(*shifted, p, *m_backend) : b;
    const StudyResult again = evaluateCodebooks(*shifted, quantizerSets(trained), "", p, *m_backend);
    EXPECT_DOUBLE_EQ(again.jobs[0].error().errorEnergy, trained.jobs[0].error().errorEnergy) << perHead;
    EXPECT_EQ(again.jobs[0].channelMeans, trained.jobs[0].channelMeans);
  }
  // Means for another number of kv heads are refused, naming the codebook file.
  std::vector<QuantizerSet> sets = quantizerSets(b);
  sets[0].channelMeans.resize(3 * 16, 0.0f);
  try {
    evaluateCodebooks(*shifted, sets, "cb.h5", centred, *m_backend);
    FAIL() << "means of 3 heads were accepted for a 2-head dump";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "cb.h5");
    EXPECT_NE(e.problem().find("kv heads"), std::string::npos) << e.problem();
  }
}

TEST_F(StudyTest, ProgressReachesOneAndCancelStops) {
  const auto reader = open();
  StudyOptions o = smallOptions(8, 1);
  double last = -1;
  bool monotone = true;
  TaskControl ctl;
  ctl.onProgress = [&](double f, const std::string&) {
    monotone = monotone && f >= last - 1e-12;
    last = f;
  };
  runStudy(*reader, o, *m_backend, &ctl);
  EXPECT_TRUE(monotone);
  EXPECT_DOUBLE_EQ(last, 1.0);

  std::atomic<bool> cancel{true};
  TaskControl cancelled;
  cancelled.cancel = &cancel;
  try {
    runStudy(*reader, o, *m_backend, &cancelled);
    FAIL() << "expected Cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cancelled);
  }
}

}  // namespace
}  // namespace kvq
