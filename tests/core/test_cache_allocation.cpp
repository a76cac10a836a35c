// Tokens kept exact in the quantized cache (sinks, RVQ's sliding window) come back bit for bit;
// the bits of a cache counted by hand (codes, scales, exact tokens, amortised codebooks); the
// model-in-the-loop loss table; an allocation stays within its budget and round-trips through
// the codebook file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/cache_allocation.h"
#include "kvq/model/cache_quantizer.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/preprocess.h"
#include "test_util.h"
#include "tiny_model.h"

namespace kvq {
namespace {

using test::normals;

// A codebook file's description, no codebooks: the paper preset at C, g, K for numKvHeads heads
// of headDim channels.
CodebookFile codebookHeader(int codebookSize, int groupSize, int depth, int headDim, int numKvHeads) {
  CodebookFile f;
  f.config = presetConfig("paper");
  f.config.codebookSize = codebookSize;
  f.config.groupSize = groupSize;
  f.config.depth = depth;
  f.headDim = headDim;
  f.numKvHeads = numKvHeads;
  return f;
}

// Codebooks for the tiny model (1 layer, 1 kv head, head_dim 4): C = 4, g = 2, K = 3, random.
CodebookFile tinyCodebooks() {
  CodebookFile f = codebookHeader(4, 2, 3, 4, 1);
  f.model = "tiny";
  for (Kind kind : {Kind::Keys, Kind::Values}) {
    QuantizerSet s;
    s.layer = 0;
    s.kind = kind;
    s.channelOrder = {0, 1, 2, 3};
    Codebooks b(3, 4, 2);
    b.data = normals(b.data.size(), kind == Kind::Keys ? 1 : 2);
    s.codebooks.push_back(b);
    f.sets.push_back(s);
  }
  return f;
}

TEST(ExactTokens, SinksComeBackBitForBit) {
  const CodebookFile books = tinyCodebooks();
  auto backend = makeBackend("cpu", 1);
  CacheVariantSpec kivi;
  kivi.kind = CacheVariantKind::Kivi;
  kivi.bits = 2;
  kivi.tokenGroup = 4;
  kivi.channelGroup = 4;
  kivi.sinks = 3;
  for (const CacheVariantSpec& spec : {rvqVariant(1, 3, 0), kivi}) {
    CacheQuantizer q(spec, {0}, 1, 4, &books, "tiny.h5", backend.get());
    const std::vector<float> k0 = normals(40, 5), v0 = normals(40, 6);  // 10 tokens x 4
    std::vector<float> k = k0, v = v0;
    q.apply(0, 10, k.data(), v.data());
    EXPECT_EQ(std::memcmp(k.data(), k0.data(), 12 * sizeof(float)), 0) << spec.label();
    EXPECT_EQ(std::memcmp(v.data(), v0.data(), 12 * sizeof(float)), 0) << spec.label();
    EXPECT_NE(std::memcmp(k.data() + 12, k0.data() + 12, 28 * sizeof(float)), 0) << spec.label();
    EXPECT_NE(std::memcmp(v.data() + 12, v0.data() + 12, 28 * sizeof(float)), 0) << spec.label();
  }
}

// Centred channels in the model's cache: each kv head's vectors are centred by that head's means
// (shared quantizer over token-major heads, and per-head quantizers), exactly as one head's
// vectors through scaleAndGroup / encode / decode / ungroupAndUnscale with its row.
TEST(CentredCache, EachHeadUsesItsOwnMeans) {
  for (bool perHead : {false, true}) {
    CodebookFile f = codebookHeader(4, 2, 2, 4, 2);  // 2 kv heads, D 4, C 4, g 2, K 2
    f.config.perHead = perHead;
    f.config.centerChannels = true;
    QuantizerSet s;
    s.kind = Kind::Keys;
    s.channelOrder = {0, 1, 2, 3};
    for (int q = 0; q < (perHead ? 2 : 1); ++q) {
      Codebooks b(2, 4, 2);
      b.data = normals(b.data.size(), 20 + q);
      s.codebooks.push_back(b);
    }
    s.channelMeans = {5, -3, 0.5f, 2, -1, 4, 3, -6};
    f.sets.push_back(s);
    s.kind = Kind::Values;
    f.sets.push_back(s);
    auto backend = makeBackend("cpu", 1);
    // A model with 3 kv heads does not fit these means (nor 2 per-head quantizers).
    EXPECT_THROW(CacheQuantizer(rvqVariant(2, 0, 0), {0}, 3, 4, &f, "c.h5", backend.get()), Error);
    CacheQuantizer q(rvqVariant(2, 0, 0), {0}, 2, 4, &f, "c.h5", backend.get());
    std::vector<float> k = normals(6 * 2 * 4, 7), v = k;  // 6 tokens x 2 heads x 4
    for (size_t i = 0; i < k.size(); ++i) k[i] += s.channelMeans[i % 8];
    const std::vector<float> k0 = k;
    q.apply(0, 6, k.data(), v.data());
    for (int h = 0; h < 2; ++h) {
      std::vector<float> x(6 * 4), groups(6 * 4), scales(6), want(6 * 4);
      for (int t = 0; t < 6; ++t) std::memcpy(&x[t * 4], &k0[(t * 2 + h) * 4], 4 * sizeof(float));
      const float* mu = s.channelMeans.data() + h * 4;
      scaleAndGroup(x.data(), 6, 4, s.channelOrder, 2, groups.data(), scales.data(), nullptr, mu, 1);
      std::vector<int32_t> codes(12 * 2);
      const Codebooks& books = s.codebooks[perHead ? h : 0];
      encodeRvq(groups.data(), 12, books, f.config, *backend, codes.data(), nullptr);
      decodeRvq(codes.data(), 12, books, 2, groups.data());
      ungroupAndUnscale(groups.data(), scales.data(), 6, 4, s.channelOrder, 2, want.data(), nullptr, mu, 1);
      for (int t = 0; t < 6; ++t) {
        for (int c = 0; c < 4; ++c)
          EXPECT_FLOAT_EQ(k[(t * 2 + h) * 4 + c], want[t * 4 + c]) << perHead << h << t << c;
      }
    }
  }
}

// Logits of one sequence through the tiny model with a hook (nullptr: the reference).
std::vector<float> tinyLogits(const DecoderModel& model, const std::vector<int32_t>& ids, KvCacheHook* hook) {
  return sequenceLogits(model, ids, nullptr, hook);
}

// A query that only sees exact keys and values (the sinks, or every earlier token inside RVQ's
// sliding window) gives the reference logits bit for bit; later queries do not. With sinks and a
// window together the exact tokens come from two products (the sinks through the quantized
// cache's, the window through the exact one), so the sum is only rounded differently.
TEST(ExactTokens, QueriesInsideTheExactTokensGiveTheReferenceLogitsBitForBit) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const CodebookFile books = tinyCodebooks();
  auto backend = makeBackend("cpu", 1);
  std::vector<int32_t> ids(40);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % 16);
  const std::vector<float> ref = tinyLogits(*model, ids, nullptr);
  const size_t row = 16 * sizeof(float);  // vocab 16
  for (auto [sinks, window, exactRows] : {std::tuple{5, 0, 5}, {0, 8, 8}, {2, 6, 8}}) {
    CacheQuantizer q(rvqVariant(1, sinks, window), {0}, 1, 4, &books, "tiny.h5", backend.get());
    const std::vector<float> got = tinyLogits(*model, ids, &q);
    const std::string what = "sinks " + std::to_string(sinks) + " window " + std::to_string(window);
    if (sinks == 0 || window == 0) {
      EXPECT_EQ(std::memcmp(got.data(), ref.data(), exactRows * row), 0) << what;
    } else {
      for (size_t i = 0; i < static_cast<size_t>(exactRows) * 16; ++i)
        EXPECT_NEAR(got[i], ref[i], 1e-5 * (1 + std::abs(ref[i])));
    }
    EXPECT_NE(std::memcmp(got.data() + exactRows * 16, ref.data() + exactRows * 16, 4 * row), 0) << what;
  }
  CacheQuantizer all(rvqVariant(1, 0, 64), {0}, 1, 4, &books, "tiny.h5", backend.get());  // window > sequence
  EXPECT_EQ(std::memcmp(tinyLogits(*model, ids, &all).data(), ref.data(), ref.size() * sizeof(float)), 0);
}

TEST(CacheBits, RvqCountsCodesScalesExactTokensAndCodebooksByHand) {
  CodebookFile f = codebookHeader(256, 8, 4, 64, 3);
  // exact share 64/2048 = 1/32: (31/32)(3 + 16/64) + 16/32 = 3.6484375; codebooks 32*3*256*8 bits
  // over 32768 tokens x 3 heads x 64 channels = 0.03125
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 3, 4, 60, {2048, 32768}), 3.6484375 + 0.03125);
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 3, 0, 0, {2048, 0}), 3.25);
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 0, 4, 60, {2048, 32768}), 16.0);  // left exact
  f.config.perHead = true;                                               // three copies of the codebooks
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 3, 0, 0, {2048, 32768}), 3.25 + 3 * 0.03125);
  f.config.centerChannels = true;  // + the [3, 64] float32 means: 32 bits per channel over 32768 tokens
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 3, 0, 0, {2048, 32768}), 3.25 + 3 * 0.03125 + 32.0 / 32768);
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 3, 0, 0, {2048, 0}), 3.25);  // not amortised: codes and scales
  f.config.centerChannels = false;
  // shorter than sinks + window: every token exact
  EXPECT_DOUBLE_EQ(rvqQuantizerBits(f, 2, 4, 60, {50, 0}), 16.0);
  // an allocation: the mean over layers x kinds
  CacheVariantSpec s = rvqVariant(0, 0, 0);
  s.layerDepths = {{1, 2}, {3, 4}};
  EXPECT_DOUBLE_EQ(cacheBitsPerChannel(s, &f, {0, 1}, {2048, 0}), 2.5 + 0.25);
  EXPECT_DOUBLE_EQ(cacheBitsPerChannel(s, &f, {1}, {2048, 0}), 3.5 + 0.25);
  // KIVI-2 (groups 32: 3 bits) with 4 sinks and no window, 64 tokens: 4 of 64 at 16 bits
  CacheVariantSpec kivi;
  kivi.kind = CacheVariantKind::Kivi;
  kivi.bits = 2;
  kivi.sinks = 4;
  EXPECT_DOUBLE_EQ(cacheBitsPerChannel(kivi, nullptr, {0}, {64, 0}), (60 * 3.0 + 4 * 16.0) / 64);
}

// The loss table of the tiny model: one item per kind, one option per depth; every loss is 0 when
// the window holds whole sequences, positive otherwise.
TEST(Allocation, LossTableOfTheTinyModel) {
  const auto model = loadDecoderModel(test::kTinyModel);
  const auto dump = DumpReader::open(test::writeTinyDump(test::freshTempDir(), *model));
  const CodebookFile books = tinyCodebooks();
  AllocationOptions o;
  o.backend = "cpu";
  o.calibrationTokens = 0;
  o.basis = {40, 0};
  const std::vector<BudgetItem> items = measureQuantizerLosses(*model, *dump, books, "tiny.h5", o);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].kind, Kind::Keys);
  EXPECT_EQ(items[1].kind, Kind::Values);
  for (const BudgetItem& item : items) {
    ASSERT_EQ(item.options.size(), 3u);
    EXPECT_EQ(item.channels, 4.0);
    for (int d = 0; d < 3; ++d) {
      EXPECT_EQ(item.options[static_cast<size_t>(d)].depth, d + 1);
      EXPECT_GT(item.options[static_cast<size_t>(d)].loss, 0.0);
      EXPECT_DOUBLE_EQ(item.options[static_cast<size_t>(d)].bitsPerChannel, (d + 1) * 1.0 + 4.0);
    }
  }
  o.window = 64;
  for (const BudgetItem& item : measureQuantizerLosses(*model, *dump, books, "tiny.h5", o)) {
    for (const BudgetOption& opt : item.options) EXPECT_EQ(opt.loss, 0.0);
  }
  // the table round-trips through CSV (bits are re-priced after reading)
  std::vector<BudgetItem> back = parseLossTableCsv(lossTableCsv(items), "t.csv");
  ASSERT_EQ(back.size(), 2u);
  priceQuantizerOptions(back, books, {});
  EXPECT_EQ(back[1].options[2].loss, items[1].options[2].loss);
  EXPECT_DOUBLE_EQ(back[1].options[2].bitsPerChannel, 3.0 + 4.0 + 32.0 * 3 * 4 * 2 / (32768.0 * 4));
  EXPECT_THROW(parseLossTableCsv("layer,kind,depth,bits_per_channel,loss\n0,queries,1,1,1\n", "t.csv"),
               Error);
}

TEST(Allocation, StaysWithinTheBudgetAndRoundTripsThroughTheCodebookFile) {
  CodebookFile books = tinyCodebooks();
  AllocationOptions o;
  o.basis = {1000, 0};
  o.sinks = 4;
  o.window = 6;
  std::vector<BudgetItem> items(2);
  items[0].kind = Kind::Keys;
  items[1].kind = Kind::Values;
  for (int d = 1; d <= 3; ++d) {
    items[0].options.push_back({d, 4, 0, 1.0 / d});
    items[1].options.push_back({d, 4, 0, 4.0 / d});  // values pay more
  }
  priceQuantizerOptions(items, books, o);
  // bits of depth d: 0.99 (d + 4) + 0.16 = 0.99 d + 4.12: budget 6.2 buys depths {1, 3} (6.1)
  const CacheAllocation a = allocateCache(items, 6.2, BudgetMethod::Exact, o);
  EXPECT_EQ(a.depths, (std::vector<int>{1, 3}));
  EXPECT_LE(a.bitsPerChannel, 6.2);
  EXPECT_DOUBLE_EQ(a.bitsPerChannel, 0.5 * (a.bits[0] + a.bits[1]));
  EXPECT_EQ(a.sinks, 4);
  EXPECT_THROW(allocateCache(items, 5.0, BudgetMethod::Exact, o), Error);  // below depth 1 everywhere
  books.allocation = a;
  const std::string path = (test::freshTempDir() / "alloc.h5").string();
  writeCodebookFile(path, books);
  const CodebookFile back = readCodebookFile(path);
  ASSERT_TRUE(back.allocation.has_value());
  EXPECT_EQ(back.allocation->depths, a.depths);
  EXPECT_EQ(back.allocation->kinds, a.kinds);
  EXPECT_EQ(back.allocation->bits, a.bits);
  EXPECT_EQ(back.allocation->window, 6);
  EXPECT_EQ(back.allocation->bitsPerChannel, a.bitsPerChannel);
  const CacheVariantSpec v = allocationVariant(*back.allocation, 1);
  EXPECT_EQ(v.depthOf(0, Kind::Keys), 1);
  EXPECT_EQ(v.depthOf(0, Kind::Values), 3);
  EXPECT_EQ(v.label(), "alloc-6.20b-s4-r6");
  EXPECT_DOUBLE_EQ(cacheBitsPerChannel(v, &back, {0}, {1000, 0}), a.bitsPerChannel);
  books.allocation->depths[1] = 4;  // deeper than the file's K = 3
  writeCodebookFile(path, books);
  EXPECT_THROW(readCodebookFile(path), Error);
}

}  // namespace
}  // namespace kvq
