// DumpWriter -> DumpReader round trips for every storage type: values equal after
// the expected rounding, slices equal the matching part of a full read, streaming
// covers every token once, and the writer is atomic.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/half.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "test_util.h"

namespace kvq {
namespace {

constexpr int64_t kTokens = 2500;  // > 2 writer chunks of 1024 tokens
constexpr int kKvHeads = 2;
constexpr int kQHeads = 4;
constexpr int kDim = 16;

// Deterministic values spanning several magnitudes (incl. fp16 subnormals).
Slab makeSlab(int64_t tokens, int heads, int dim, int salt) {
  Slab s;
  s.tokens = tokens;
  s.heads = heads;
  s.dim = dim;
  s.data.resize(static_cast<size_t>(tokens * heads * dim));
  for (size_t i = 0; i < s.data.size(); ++i) {
    const double scale = std::pow(10.0, static_cast<double>((i * 7 + static_cast<size_t>(salt)) % 9) - 6.0);
    s.data[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i) + salt) * scale * 3.3);
  }
  return s;
}

float storageRound(float x, DType dtype) {
  switch (dtype) {
    case DType::Float16:
      return roundToHalf(x);
    case DType::BFloat16:
      return bfloat16ToFloat(floatToBfloat16(x));
    case DType::Float32:
      return x;
  }
  return x;
}

class DumpRoundTrip : public ::testing::TestWithParam<std::tuple<DType, bool>> {
 protected:
  void SetUp() override {
    dtype = std::get<0>(GetParam());
    header.model = "test-model";
    header.numLayers = 3;
    header.numKvHeads = kKvHeads;
    header.headDim = kDim;
    header.numQHeads = kQHeads;
    header.keyRope = "pre";
    header.ropeTheta = 500000.0;
    header.ropeDim = kDim;
    header.source = "unit test";
    header.dtype = dtype;
    header.tokens = kTokens;
    header.gzip = std::get<1>(GetParam());
    path = (test::freshTempDir() / "dump.h5").string();
    auto writer = DumpWriter::create(path, header);
    for (int layer : {0, 2}) {
      keys.push_back(makeSlab(kTokens, kKvHeads, kDim, layer * 3 + 0));
      values.push_back(makeSlab(kTokens, kKvHeads, kDim, layer * 3 + 1));
      queries.push_back(makeSlab(kTokens, kQHeads, kDim, layer * 3 + 2));
      writer->writeLayer(layer, keys.back(), values.back(), &queries.back());
    }
    for (int64_t t = 0; t < kTokens; ++t) ids.push_back(static_cast<int32_t>(t * 31 % 49152));
    writer->writeTokenIds(ids);
    writer->writeSequenceStarts({0, 1000, 2400});
    writer->commit();
  }

  // The slab written for (layer index in {0, 2}, kind).
  const Slab& written(int layer, Kind kind) const {
    const size_t i = layer == 0 ? 0 : 1;
    return kind == Kind::Keys ? keys[i] : kind == Kind::Values ? values[i] : queries[i];
  }

  DType dtype = DType::Float32;
  DumpHeader header;
  std::string path;
  std::vector<Slab> keys, values, queries;
  std::vector<int32_t> ids;
};

TEST_P(DumpRoundTrip, InfoMatchesHeader) {
  const auto reader = DumpReader::open(path);
  const DumpInfo& info = reader->info();
  EXPECT_EQ(info.path, path);
  EXPECT_EQ(info.model, "test-model");
  EXPECT_EQ(info.numLayers, 3);
  EXPECT_EQ(info.numKvHeads, kKvHeads);
  EXPECT_EQ(info.numQHeads, kQHeads);
  EXPECT_EQ(info.headDim, kDim);
  EXPECT_EQ(info.keyRope, "pre");
  ASSERT_TRUE(info.ropeTheta.has_value());
  EXPECT_EQ(*info.ropeTheta, 500000.0);
  ASSERT_TRUE(info.ropeDim.has_value());
  EXPECT_EQ(*info.ropeDim, kDim);
  EXPECT_EQ(info.source, "unit test");
  EXPECT_EQ(info.tokens, kTokens);
  EXPECT_EQ(info.layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(info.dtype, dtype);
  EXPECT_TRUE(info.hasQueries);
  EXPECT_TRUE(info.hasTokenIds);
  EXPECT_EQ(info.sequenceStarts, (std::vector<int64_t>{0, 1000, 2400}));
  EXPECT_EQ(reader->tokenIds(), ids);
  EXPECT_TRUE(reader->has(2, Kind::Queries));
  EXPECT_FALSE(reader->has(1, Kind::Keys));
}

TEST_P(DumpRoundTrip, FullReadEqualsRoundedInput) {
  const auto reader = DumpReader::open(path);
  for (int layer : {0, 2}) {
    for (Kind kind : {Kind::Keys, Kind::Values, Kind::Queries}) {
      const Slab got = reader->read(layer, kind);
      const Slab& want = written(layer, kind);
      ASSERT_EQ(got.tokens, kTokens);
      ASSERT_EQ(got.heads, want.heads);
      ASSERT_EQ(got.dim, kDim);
      ASSERT_EQ(got.data.size(), want.data.size());
      for (size_t i = 0; i < got.data.size(); ++i) {
        ASSERT_EQ(got.data[i], storageRound(want.data[i], dtype))
            << "layer " << layer << " " << kindName(kind) << " index " << i;
      }
    }
  }
}

TEST_P(DumpRoundTrip, SlicesEqualFullRead) {
  const auto reader = DumpReader::open(path);
  const Slab full = reader->read(2, Kind::Keys);
  const Slab range = reader->read(2, Kind::Keys, 1000, 1100);  // crosses a chunk boundary
  EXPECT_EQ(range.tokenBegin, 1000);
  ASSERT_EQ(range.tokens, 1100);
  for (int64_t t = 0; t < range.tokens; ++t) {
    for (int h = 0; h < kKvHeads; ++h) {
      for (int c = 0; c < kDim; ++c) ASSERT_EQ(range.at(t, h, c), full.at(t + 1000, h, c));
    }
  }
  const Slab head = reader->read(2, Kind::Keys, 0, -1, 1);
  ASSERT_EQ(head.heads, 1);
  ASSERT_EQ(head.tokens, kTokens);
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int c = 0; c < kDim; ++c) ASSERT_EQ(head.at(t, 0, c), full.at(t, 1, c));
  }
  const Slab both = reader->read(2, Kind::Queries, 2000, -1, 3);  // "to the end", one query head
  const Slab fullQ = reader->read(2, Kind::Queries);
  ASSERT_EQ(both.tokens, 500);
  for (int64_t t = 0; t < both.tokens; ++t) {
    for (int c = 0; c < kDim; ++c) ASSERT_EQ(both.at(t, 0, c), fullQ.at(t + 2000, 3, c));
  }
  EXPECT_TRUE(reader->read(0, Kind::Values, kTokens, 0).data.empty());  // empty range at the end is fine
}

TEST_P(DumpRoundTrip, ForEachChunkCoversEveryTokenOnce) {
  const auto reader = DumpReader::open(path);
  const Slab full = reader->read(0, Kind::Values);
  for (int64_t chunk : {int64_t{1}, int64_t{7}, int64_t{1024}, int64_t{99999}}) {
    std::vector<int> seen(kTokens, 0);
    int64_t next = 0;
    reader->forEachChunk(0, Kind::Values, chunk, [&](const Slab& s) {
      EXPECT_EQ(s.tokenBegin, next);
      EXPECT_LE(s.tokens, chunk);
      EXPECT_EQ(s.heads, kKvHeads);
      for (int64_t t = 0; t < s.tokens; ++t) {
        ++seen[static_cast<size_t>(s.tokenBegin + t)];
        for (int h = 0; h < kKvHeads; ++h) {
          for (int c = 0; c < kDim; ++c) ASSERT_EQ(s.at(t, h, c), full.at(s.tokenBegin + t, h, c));
        }
      }
      next = s.tokenBegin + s.tokens;
    });
    EXPECT_EQ(next, kTokens);
    for (int count : seen) ASSERT_EQ(count, 1);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllDTypes, DumpRoundTrip,
    ::testing::Combine(::testing::Values(DType::Float16, DType::BFloat16, DType::Float32), ::testing::Bool()),
    [](const ::testing::TestParamInfo<std::tuple<DType, bool>>& p) {
      return std::string(dtypeName(std::get<0>(p.param))) + (std::get<1>(p.param) ? "_gzip" : "_plain");
    });

// Expects Error(BadInput) whose message contains `needle`.
template <typename F>
void expectBadInput(F&& f, const std::string& needle) {
  try {
    f();
    FAIL() << "no error; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

DumpHeader smallHeader(DType dtype) {
  return test::dumpHeader("m", 2, 2, 4, 10, dtype);
}

TEST(DumpReaderRequests, RefusesOutOfRangeAndOversizedReads) {
  const std::string path = (test::freshTempDir() / "small.h5").string();
  auto writer = DumpWriter::create(path, smallHeader(DType::Float32));
  writer->writeLayer(1, makeSlab(10, 2, 4, 1), makeSlab(10, 2, 4, 2));
  writer->commit();
  OpenOptions options;
  options.maxReadBytes = 5 * 2 * 4 * 4;  // five tokens of float32
  const auto reader = DumpReader::open(path, options);
  expectBadInput([&] { reader->read(0, Kind::Keys); }, path + ": /layers/0: layer 0 is not in this dump");
  expectBadInput([&] { reader->read(1, Kind::Queries); }, "/layers/1/queries: not present in this dump");
  expectBadInput([&] { reader->read(1, Kind::Keys, 8, 3); },
                 "/layers/1/keys: token range [8, 11) is outside [0, 10)");
  expectBadInput([&] { reader->read(1, Kind::Keys, -1, 2); }, "token range [-1, 1) is outside [0, 10)");
  expectBadInput([&] { reader->read(1, Kind::Keys, 11); }, "is outside [0, 10)");
  expectBadInput([&] { reader->read(1, Kind::Keys, 0, 1, 2); }, "head 2 is outside [0, 2)");
  expectBadInput([&] { reader->read(1, Kind::Keys, 0, 6); },
                 "a read of 192 bytes exceeds the limit of 160 bytes");
  EXPECT_EQ(reader->read(1, Kind::Keys, 0, 5).tokens, 5);       // exactly at the limit
  EXPECT_EQ(reader->read(1, Kind::Keys, 0, 10, 0).tokens, 10);  // one head fits
  // Streaming respects the limit by shrinking its blocks.
  int64_t maxBlock = 0, total = 0;
  reader->forEachChunk(1, Kind::Values, 1000, [&](const Slab& s) {
    maxBlock = std::max(maxBlock, s.tokens);
    total += s.tokens;
  });
  EXPECT_EQ(maxBlock, 5);
  EXPECT_EQ(total, 10);
  EXPECT_TRUE(reader->tokenIds().empty());
}

TEST(DumpWriterAtomic, UncommittedWriterLeavesNothing) {
  const std::filesystem::path dir = test::freshTempDir();
  const std::string path = (dir / "dump.h5").string();
  {
    auto writer = DumpWriter::create(path, smallHeader(DType::Float16));
    writer->writeLayer(0, makeSlab(10, 2, 4, 1), makeSlab(10, 2, 4, 2));
    EXPECT_FALSE(std::filesystem::exists(path));  // only the temporary exists so far
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
              1);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // temporary removed
}

TEST(DumpWriterAtomic, CommitReplacesAnExistingFile) {
  const std::filesystem::path dir = test::freshTempDir();
  const std::string path = (dir / "dump.h5").string();
  for (int round = 0; round < 2; ++round) {
    auto writer = DumpWriter::create(path, smallHeader(DType::Float32));
    writer->writeLayer(round, makeSlab(10, 2, 4, round), makeSlab(10, 2, 4, 5));
    writer->commit();
  }
  const auto reader = DumpReader::open(path);
  EXPECT_EQ(reader->info().layers, std::vector<int>{1});
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
            1);
}

// Two writers of one path in one process used to share "<path>.tmp-<pid>": the
// second could not create it while the first had it open. Now each has its own.
TEST(DumpWriterAtomic, TwoWritersOfOnePathInOneProcessDoNotCollide) {
  const std::filesystem::path dir = test::freshTempDir();
  const std::string path = (dir / "dump.h5").string();
  auto first = DumpWriter::create(path, smallHeader(DType::Float32));
  auto second = DumpWriter::create(path, smallHeader(DType::Float32));
  first->writeLayer(0, makeSlab(10, 2, 4, 1), makeSlab(10, 2, 4, 2));
  second->writeLayer(1, makeSlab(10, 2, 4, 3), makeSlab(10, 2, 4, 4));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
            2);
  first->commit();
  second->commit();  // the last commit wins, whole
  EXPECT_EQ(DumpReader::open(path)->info().layers, std::vector<int>{1});
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()),
            1);
}

TEST(DumpWriterMisuse, RefusesBadCalls) {
  const std::string path = (test::freshTempDir() / "dump.h5").string();
  auto writer = DumpWriter::create(path, smallHeader(DType::Float32));
  expectBadInput([&] { writer->commit(); }, "no layer was written");
  expectBadInput([&] { writer->writeLayer(2, makeSlab(10, 2, 4, 0), makeSlab(10, 2, 4, 0)); },
                 "layer index outside [0, 2)");
  expectBadInput([&] { writer->writeLayer(0, makeSlab(9, 2, 4, 0), makeSlab(10, 2, 4, 0)); },
                 "slab shape [9, 2, 4] (72 values) does not match [10, 2, 4]");
  const Slab q = makeSlab(10, 2, 4, 0);
  expectBadInput([&] { writer->writeLayer(0, q, q, &q); }, "queries given but numQHeads is 0");
  expectBadInput([&] { writer->writeSequenceStarts({0, 5, 5}); }, "ascend strictly");
  expectBadInput([&] { writer->writeTokenIds({1, 2}); }, "2 ids for 10 tokens");
  writer->writeLayer(0, q, q);
  expectBadInput([&] { writer->writeLayer(0, q, q); }, "layer written twice");
  writer->commit();
  expectBadInput([&] { writer->writeLayer(1, q, q); }, "already committed");
  expectBadInput([&] { DumpWriter::create(path, DumpHeader{}); }, "must be positive");
  expectBadInput([&] { DumpWriter::create("/nonexistent-dir/x.h5", smallHeader(DType::Float32)); },
                 "/nonexistent-dir/x.h5: cannot create the file");
}

}  // namespace
}  // namespace kvq

namespace kvq {
namespace {

// The attention fields: RoPE layout, inverse frequencies, softmax scale, and
// queries stored only for some tokens (/query_positions).
TEST(DumpAttentionFields, RoundTripWithQueryPositions) {
  DumpHeader h = smallHeader(DType::Float32);  // 10 tokens, 2 kv heads, D = 4
  h.numQHeads = 4;
  h.ropeDim = 4;
  h.ropeLayout = "interleaved";
  h.ropeInvFreq = {1.0, 0.01};
  h.attentionScale = 0.125;
  h.queryPositions = {2, 3, 7, 9};
  const std::string path = (test::freshTempDir() / "dump.h5").string();
  auto writer = DumpWriter::create(path, h);
  const Slab kv = makeSlab(10, 2, 4, 1);
  const Slab q = makeSlab(4, 4, 4, 2);  // one row per query position
  expectBadInput([&] { writer->writeLayer(0, kv, kv, &kv); }, "does not match [4, 4, 4]");
  writer->writeLayer(0, kv, kv, &q);
  writer->commit();

  const auto reader = DumpReader::open(path);
  const DumpInfo& info = reader->info();
  EXPECT_EQ(info.ropeLayout, "interleaved");
  EXPECT_EQ(info.ropeInvFreq, (std::vector<double>{1.0, 0.01}));
  EXPECT_EQ(info.attentionScale.value_or(0), 0.125);
  EXPECT_EQ(info.queryPositions, (std::vector<int64_t>{2, 3, 7, 9}));
  EXPECT_EQ(info.queryTokens, 4);
  EXPECT_EQ(info.tokens, 10);
  EXPECT_TRUE(info.hasQueries);
  EXPECT_EQ(reader->read(0, Kind::Queries).data, q.data);
  EXPECT_EQ(reader->read(0, Kind::Queries, 1, 2).data,
            std::vector<float>(q.data.begin() + 16, q.data.begin() + 48));
  expectBadInput([&] { reader->read(0, Kind::Queries, 3, 2); }, "token range [3, 5) is outside [0, 4)");
}

TEST(DumpAttentionFields, DefaultsWhenAbsentAndWriterChecks) {
  const std::string path = (test::freshTempDir() / "dump.h5").string();
  auto writer = DumpWriter::create(path, smallHeader(DType::Float32));
  const Slab kv = makeSlab(10, 2, 4, 1);
  writer->writeLayer(0, kv, kv);
  writer->commit();
  const auto reader = DumpReader::open(path);
  const DumpInfo& info = reader->info();
  EXPECT_EQ(info.ropeLayout, "half");
  EXPECT_TRUE(info.ropeInvFreq.empty());
  EXPECT_FALSE(info.attentionScale.has_value());
  EXPECT_EQ(info.queryTokens, 0);

  DumpHeader bad = smallHeader(DType::Float32);
  bad.ropeLayout = "neox";
  expectBadInput([&] { DumpWriter::create(path, bad); }, "ropeLayout must be");
  bad = smallHeader(DType::Float32);
  bad.ropeInvFreq = {1.0};  // rope_dim is head_dim 4: two pairs
  expectBadInput([&] { DumpWriter::create(path, bad); }, "ropeInvFreq must hold ropeDim/2 entries");
  bad = smallHeader(DType::Float32);
  bad.queryPositions = {3, 3};
  expectBadInput([&] { DumpWriter::create(path, bad); }, "queryPositions must ascend strictly");
  bad.queryPositions = {3};
  auto noQueries = DumpWriter::create(path, bad);
  noQueries->writeLayer(0, kv, kv);
  expectBadInput([&] { noQueries->commit(); }, "no layer holds queries");
}

}  // namespace
}  // namespace kvq
