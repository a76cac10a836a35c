// The model pass (kvq/model/decoder_pass.h), its attention kernel against a brute-force
// reference (KIVI's window rule included), RoPE by hand, and the perplexity evaluation: an
// untouched cache gives KL exactly 0 and the reference perplexity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/model/cache_quantizer.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/model/perplexity.h"
#include "kvq/model/random_model.h"
#include "kvq/model/rope.h"
#include "kvq/model/weight_gemm.h"
#include "kvq/rvq/rvq_config.h"
#include "model/attention.h"
#include "model/gemm.h"
#include "test_util.h"
#include "tiny_model.h"

namespace kvq {
namespace {

// A random-weights model's shape small enough to check by hand: H_q = 4, H = 2, D = 8.
ModelConfig smallModelConfig(int layers) {
  return decoderConfig(
      {.layers = layers, .hidden = 16, .qHeads = 4, .kvHeads = 2, .headDim = 8, .ffn = 24, .vocab = 50});
}

TEST(Rope, RotatesHalfPairsByPositionTimesFrequency) {
  // D = 4, theta = 100: pair (0, 2) turns 1 rad per position, pair (1, 3) 0.1 rad.
  RopeConfig rope;
  rope.theta = 100.0;
  rope.dim = 4;
  const auto inv = ropeInverseFrequencies(rope);
  ASSERT_EQ(inv.size(), 2u);
  EXPECT_DOUBLE_EQ(inv[1], 0.1);
  std::vector<float> x = {1, 2, 0, 0, 1, 2, 0, 0};  // two tokens, one head
  applyRope(x.data(), 2, 1, 4, 4, 2, inv);          // positions 2 and 3
  for (int t = 0; t < 2; ++t) {
    const double a = 2 + t, b = 0.1 * (2 + t);
    EXPECT_NEAR(x[t * 4 + 0], std::cos(a), 1e-6);
    EXPECT_NEAR(x[t * 4 + 1], 2 * std::cos(b), 1e-6);
    EXPECT_NEAR(x[t * 4 + 2], std::sin(a), 1e-6);
    EXPECT_NEAR(x[t * 4 + 3], 2 * std::sin(b), 1e-6);
  }
  rope.scaling = "linear";
  rope.factor = 4.0;
  EXPECT_DOUBLE_EQ(ropeInverseFrequencies(rope)[0], 0.25);
}

TEST(Gemm, OpenBlasAndEigenAgreeWithALoop) {
  const int64_t m = 37, n = 70, k = 19;
  const auto a = test::normals(static_cast<size_t>(m * k), 1),
             b = test::normals(static_cast<size_t>(n * k), 2);
  for (auto engine : {model::GemmEngine::OpenBlas, model::GemmEngine::Eigen}) {
    std::vector<float> c(static_cast<size_t>(m * n), 1.0f), cb(static_cast<size_t>(m * n));
    model::gemmABt(engine, m, n, k, a.data(), k, b.data(), k, 1.0f, c.data(), n);  // C = A B^T + C
    model::gemmAB(engine, m, n, k, a.data(), k, b.data(), n, 0.0f, cb.data(), n);  // B read as [k, n]
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double abt = 1.0, ab = 0.0;
        for (int64_t p = 0; p < k; ++p) {
          abt += static_cast<double>(a[i * k + p]) * b[j * k + p];
          ab += static_cast<double>(a[i * k + p]) * b[p * n + j];
        }
        EXPECT_NEAR(c[i * n + j], abt, 1e-4) << model::gemmEngineName(engine);
        EXPECT_NEAR(cb[i * n + j], ab, 1e-4) << model::gemmEngineName(engine);
      }
    }
  }
}

// Brute force: query t of head h attends keys/values 0..t of head h / group; with a window R,
// key j is full precision iff j >= floor((t+1)/R)*R and value j iff t - j < R.
std::vector<float> bruteAttention(const model::AttentionInput& in) {
  const int d = in.headDim, group = in.qHeads / in.kvHeads;
  const int64_t kvs = static_cast<int64_t>(in.kvHeads) * d;
  std::vector<float> out(static_cast<size_t>(in.tokens * in.qHeads * d));
  for (int64_t t = 0; t < in.tokens; ++t) {
    for (int h = 0; h < in.qHeads; ++h) {
      const int kv = h / group;
      std::vector<double> s(static_cast<size_t>(t + 1));
      double mx = -1e300;
      for (int64_t j = 0; j <= t; ++j) {
        const bool fullKey = in.window > 0 && j >= (t + 1) / in.window * in.window;
        const float* k = (fullKey ? in.kRecent : in.k) + j * kvs + kv * d;
        double dot = 0;
        for (int c = 0; c < d; ++c) dot += static_cast<double>(in.q[t * in.qStride + h * d + c]) * k[c];
        s[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(d));
        mx = std::max(mx, s[static_cast<size_t>(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int c = 0; c < d; ++c) {
        double o = 0;
        for (int64_t j = 0; j <= t; ++j) {
          const bool fullValue = in.window > 0 && t - j < in.window;
          o += s[static_cast<size_t>(j)] / sum * (fullValue ? in.vRecent : in.v)[j * kvs + kv * d + c];
        }
        out[static_cast<size_t>((t * in.qHeads + h) * d + c)] = static_cast<float>(o);
      }
    }
  }
  return out;
}

TEST(Attention, BlockedCausalGqaMatchesBruteForceWithAndWithoutWindow) {
  const int64_t tokens = 150;  // three query blocks of 64, the last partial
  const int hq = 4, hkv = 2, d = 8;
  const auto q = test::normals(static_cast<size_t>(tokens * hq * d), 3);
  const auto k = test::normals(static_cast<size_t>(tokens * hkv * d), 4);
  const auto v = test::normals(static_cast<size_t>(tokens * hkv * d), 5);
  const auto kr = test::normals(k.size(), 6), vr = test::normals(v.size(), 7);
  for (int window : {0, 32}) {
    model::AttentionInput in;
    in.tokens = tokens;
    in.qHeads = hq;
    in.kvHeads = hkv;
    in.headDim = d;
    in.q = q.data();
    in.qStride = hq * d;
    in.k = k.data();
    in.v = v.data();
    if (window > 0) {
      in.kRecent = kr.data();
      in.vRecent = vr.data();
      in.window = window;
    }
    std::vector<float> got(static_cast<size_t>(tokens * hq * d));
    model::causalAttention(model::GemmEngine::OpenBlas, in, got.data());
    const auto want = bruteAttention(in);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 2e-5) << "window " << window << " at " << i;
  }
}

TEST(Perplexity, UntouchedCacheGivesKlExactlyZeroAndTheReferencePerplexity) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const auto dump = DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model));
  PplOptions options;
  options.variants.push_back({});  // identity
  CacheVariantSpec kivi;
  kivi.kind = CacheVariantKind::Kivi;
  kivi.bits = 2;
  kivi.tokenGroup = 4;
  kivi.channelGroup = 4;
  options.variants.push_back(kivi);
  kivi.window = 128;  // longer than either sequence: nothing leaves the window
  options.variants.push_back(kivi);
  const PplReport r = evaluatePerplexity(*model, *dump, options);
  ASSERT_EQ(r.variants.size(), 3u);
  EXPECT_EQ(r.reference.tokens, 39 + 29);
  for (size_t v : {size_t{0}, size_t{2}}) {
    EXPECT_EQ(r.variants[v].overall.kl, 0.0) << r.variants[v].label;
    EXPECT_EQ(r.variants[v].overall.nll, r.reference.nll) << r.variants[v].label;
    EXPECT_EQ(r.variants[v].overall.top1, r.variants[v].overall.tokens);
  }
  EXPECT_GT(r.variants[1].overall.kl, 1e-4);  // 2-bit keys and values do change the model
  EXPECT_DOUBLE_EQ(r.variants[1].bitsPerChannel, 2 + 32.0 / 4);
  EXPECT_DOUBLE_EQ(r.variants[2].bitsPerChannel, 16.0);  // every token inside the window
  // The reference pass reproduces the stored keys/values (written in float32 above) exactly.
  ASSERT_EQ(r.agreement.size(), 2u);
  EXPECT_EQ(r.agreement[0].relativeError, 0.0);
  // Reference perplexity by hand from the logits of the first sequence.
  const auto ids = dump->tokenIds();
  const std::vector<int32_t> first(ids.begin(), ids.begin() + 40);
  const auto logits = sequenceLogits(*model, first);
  double nll = 0;
  for (int t = 0; t < 39; ++t) {
    const float* l = logits.data() + t * 16;
    double z = 0;
    for (int i = 0; i < 16; ++i) z += std::exp(static_cast<double>(l[i]));
    nll += std::log(z) - l[first[static_cast<size_t>(t + 1)]];
  }
  EXPECT_NEAR(r.referenceSequences[0].nll, nll, 1e-5 * nll);
}

// A dump in llama.cpp's interleaved rotary channel order (rope_layout "interleaved") is read in
// its own order: the reference pass agrees with its keys exactly, stored before or after RoPE,
// and codebooks whose channel groups follow the dump's order quantize the same channels as the
// same codebooks on the Hugging Face-order dump, so the model loses the same.
TEST(Perplexity, InterleavedDumpsAreReadInTheirOwnChannelOrder) {
  const auto model = loadDecoderModel(test::kTinyModel);
  ASSERT_EQ(model->config.rope.dim, 4);
  for (bool post : {false, true}) {
    const auto dump =
        DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model, RopeLayout::Interleaved, post));
    PplOptions options;
    options.variants.push_back({});
    const PplReport r = evaluatePerplexity(*model, *dump, options);
    ASSERT_EQ(r.agreement.size(), 2u);
    EXPECT_EQ(r.agreement[0].kind, Kind::Keys);
    EXPECT_EQ(r.agreement[0].relativeError, 0.0) << (post ? "post-RoPE" : "pre-RoPE");
    EXPECT_EQ(r.agreement[1].relativeError, 0.0);
  }
  // C = 4, g = 2, K = 3, random; groups (0, 1), (2, 3) of the Hugging Face order.
  CodebookFile books;
  books.config = presetConfig("paper");
  books.config.codebookSize = 4;
  books.config.groupSize = 2;
  books.config.depth = 3;
  books.headDim = 4;
  books.numKvHeads = 1;
  books.model = "tiny";
  for (Kind kind : {Kind::Keys, Kind::Values}) {
    QuantizerSet set{0, kind, {0, 1, 2, 3}, {}, {Codebooks(3, 4, 2)}, {}};
    set.codebooks[0].data = test::normals(set.codebooks[0].data.size(), kind == Kind::Keys ? 1 : 2);
    books.sets.push_back(set);
  }
  CodebookFile interleavedBooks = books;  // the same groups, named by the interleaved dump's channels
  const std::vector<int> at = channelsInLayout(RopeLayout::Interleaved, 4, 4);
  ASSERT_EQ(at, (std::vector<int>{0, 2, 1, 3}));
  interleavedBooks.sets[0].channelOrder = {at[0], at[1], at[2], at[3]};
  PplOptions options;
  CacheVariantSpec rvq;
  rvq.kind = CacheVariantKind::Rvq;
  rvq.depth = 2;
  options.variants.push_back(rvq);
  options.codebooks = &books;
  const PplReport half = evaluatePerplexity(
      *model, *DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model)), options);
  options.codebooks = &interleavedBooks;
  const PplReport interleaved = evaluatePerplexity(
      *model, *DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model, RopeLayout::Interleaved)),
      options);
  const TokenStats& a = half.variants[0].overall;
  const TokenStats& b = interleaved.variants[0].overall;
  EXPECT_GT(a.kl, 1e-3);  // the codebooks do change the model
  EXPECT_NEAR(b.kl, a.kl, 1e-5 * a.kl);
  EXPECT_NEAR(b.nll, a.nll, 1e-6 * a.nll);
  // The Hugging Face-order codebooks on the interleaved dump group other channels.
  options.codebooks = &books;
  const PplReport crossed = evaluatePerplexity(
      *model, *DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model, RopeLayout::Interleaved)),
      options);
  EXPECT_GT(std::abs(crossed.variants[0].overall.kl - a.kl), 1e-4 * a.kl);
}

TEST(Perplexity, PassIsCausal) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  const auto full = sequenceLogits(*model, ids);
  const auto prefix = sequenceLogits(*model, {ids.begin(), ids.begin() + 4});
  for (size_t i = 0; i < prefix.size(); ++i) EXPECT_NEAR(full[i], prefix[i], 1e-5);
}

TEST(Perplexity, RefusesADumpOfAnotherShape) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const auto dump = DumpReader::open(KVQ_SAMPLE_DUMP, {.scanValues = false});
  try {
    evaluatePerplexity(*model, *dump, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("num_layers"), std::string::npos) << e.what();
  }
}

// The CPU engine underneath; fails the test for a product with a matrix that is not one of the
// model's weights (a GPU engine holds device copies of those only).
class RecordingGemm : public WeightGemm {
 public:
  explicit RecordingGemm(const DecoderModel& model) {
    for (const WeightMatrix& w : modelWeightMatrices(model)) m_known.insert(w.data);
  }
  std::string name() const override { return "recording"; }
  void multiplyABt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w, float beta,
                   float* c, int64_t ldc) override {
    EXPECT_EQ(m_known.count(w), 1u) << "a product with a matrix that is not a weight";
    ++calls;
    m_cpu->multiplyABt(m, n, k, a, lda, w, beta, c, ldc);
  }
  int calls = 0;

 private:
  std::set<const float*> m_known;
  std::unique_ptr<WeightGemm> m_cpu = makeCpuWeightGemm();
};

TEST(WeightGemm, EveryWeightProductOfThePassGoesThroughTheEngine) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const std::vector<int32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  RecordingGemm recording(*model);
  const auto got = sequenceLogits(*model, ids, &recording);
  EXPECT_EQ(got, sequenceLogits(*model, ids));                  // the same products underneath: bit for bit
  EXPECT_EQ(recording.calls, 4 * model->config.numLayers + 1);  // q/k/v, o, gate/up, down; head
}

TEST(WeightGemm, ModelWeightMatricesListsEachMatrixOnceWithItsShape) {
  ModelConfig c = smallModelConfig(2);
  for (bool tied : {true, false}) {
    c.tiedOutput = tied;
    const auto model = makeRandomDecoderModel(c, 1);
    const auto list = modelWeightMatrices(*model);
    ASSERT_EQ(list.size(), 9u);
    EXPECT_EQ(list[0].data, model->layers[0].wqkv.data());
    EXPECT_EQ(list[0].rows * list[0].cols, static_cast<int64_t>(model->layers[0].wqkv.size()));
    EXPECT_EQ(list[2].rows, 48);  // gate and up rows
    EXPECT_EQ(list[3].cols, 24);  // down reads the ffn
    EXPECT_EQ(list[8].data, tied ? model->embedding.data() : model->output.data());
    EXPECT_EQ(list[8].rows, 50);
  }
}

TEST(WeightGemm, ChoiceAndFallbackToTheCpu) {
  const auto model = loadDecoderModel(test::kTinyModel);
  registerGpuGemmFactory(nullptr);
  std::string note;
  EXPECT_EQ(makeWeightGemm("cpu", *model, {}, &note)->name().rfind("CPU (", 0), 0u);
  EXPECT_EQ(note.rfind("model pass: CPU", 0), 0u) << note;
  EXPECT_EQ(makeWeightGemm("auto", *model, {}, &note)->name().rfind("CPU", 0), 0u);
  EXPECT_NE(note.find("(auto; no GPU: this build has no cuBLAS model pass)"), std::string::npos) << note;
  const auto kindOf = [&](const std::string& choice) {
    try {
      (void)makeWeightGemm(choice, *model);
    } catch (const Error& e) {
      return e.kind();
    }
    return ErrorKind::Internal;  // not thrown: the test fails below
  };
  EXPECT_EQ(kindOf("cuda"), ErrorKind::Resource);
  EXPECT_EQ(kindOf("tpu"), ErrorKind::BadInput);
  registerGpuGemmFactory([](const DecoderModel&, const GpuGemmRequest&) -> std::unique_ptr<WeightGemm> {
    throw Error(ErrorKind::Resource, "", "device", "no device here");
  });
  EXPECT_EQ(makeWeightGemm("auto", *model, {}, &note)->name().rfind("CPU", 0), 0u);
  EXPECT_NE(note.find("no GPU: no device here"), std::string::npos) << note;
  EXPECT_EQ(kindOf("cuda"), ErrorKind::Resource);
  bool tf32 = false;
  registerGpuGemmFactory([&tf32](const DecoderModel& m, const GpuGemmRequest& request) {
    tf32 = request.allowTf32;
    return std::unique_ptr<WeightGemm>(new RecordingGemm(m));
  });
  EXPECT_TRUE(gpuGemmBuilt());
  EXPECT_EQ(makeWeightGemm("auto", *model, {true}, &note)->name(), "recording");
  EXPECT_EQ(note, "model pass: recording (auto)");
  EXPECT_TRUE(tf32);
  registerGpuGemmFactory(nullptr);
  EXPECT_FALSE(gpuGemmBuilt());
}

TEST(WeightGemm, PerplexityRunsThePassOnTheChosenEngine) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const auto dump = DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model));
  PplOptions options;
  options.backend = "cpu";
  const PplReport cpu = evaluatePerplexity(*model, *dump, options);
  EXPECT_EQ(cpu.passEngine.rfind("CPU (", 0), 0u) << cpu.passEngine;
  int calls = 0;
  registerGpuGemmFactory([&calls](const DecoderModel& m, const GpuGemmRequest&) {
    ++calls;  // made once per evaluation: a GPU engine uploads the weights once
    return std::unique_ptr<WeightGemm>(new RecordingGemm(m));
  });
  options.backend = "cuda";
  const PplReport gpu = evaluatePerplexity(*model, *dump, options);
  registerGpuGemmFactory(nullptr);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(gpu.passEngine, "recording");
  EXPECT_EQ(gpu.passNote, "model pass: recording");
  EXPECT_EQ(gpu.reference.nll, cpu.reference.nll);
}

TEST(RandomModel, IsDeterministicInItsSeedAndRefusesShapesThePassCannotRun) {
  ModelConfig c = smallModelConfig(1);
  const auto a = makeRandomDecoderModel(c, 3), b = makeRandomDecoderModel(c, 3),
             d = makeRandomDecoderModel(c, 4);
  EXPECT_EQ(a->layers[0].wDown, b->layers[0].wDown);
  EXPECT_NE(a->layers[0].wDown, d->layers[0].wDown);
  const auto logits = sequenceLogits(*a, {1, 2, 3, 4});
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
  EXPECT_EQ(smolLm2Config().qkvRows(), (9 + 2 * 3) * 64);
  c.numKvHeads = 3;  // 4 query heads are not a multiple of 3
  EXPECT_THROW(makeRandomDecoderModel(c, 1), Error);
}

// Core names the setting it refuses by its field name; the CLI turns it into its flag.
TEST(CacheVariant, RefusalsNameTheFieldNotAFlag) {
  const auto whereOf = [](const CacheVariantSpec& spec) {
    try {
      validateCacheVariant(spec, nullptr, 64);
    } catch (const Error& e) {
      return e.where();
    }
    return std::string("accepted");
  };
  CacheVariantSpec kivi;
  kivi.kind = CacheVariantKind::Kivi;
  kivi.bits = 3;
  EXPECT_EQ(whereOf(kivi), "accepted");
  kivi.window = 5;  // not a multiple of the token group 32
  EXPECT_EQ(whereOf(kivi), "kivi_window");
  kivi.window = 0;
  kivi.bits = 9;
  EXPECT_EQ(whereOf(kivi), "kivi");
  EXPECT_EQ(whereOf(rvqVariant(1, 0, 0)), "depths");
}

}  // namespace
}  // namespace kvq
