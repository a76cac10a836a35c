// The GGUF reader (kvq/model/gguf_file.h), the ggml dequantizers against hand-worked blocks, the
// malformed-file corpus of tests/data/gguf/malformed and the model loader's checks.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "kvq/base/error.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/gguf_dequantize.h"
#include "kvq/model/gguf_file.h"

namespace kvq {
namespace {

const std::string kData = KVQ_TEST_DATA_DIR;

std::vector<uint8_t> fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void putHalf(std::vector<uint8_t>& b, size_t at, uint16_t h) {
  b[at] = static_cast<uint8_t>(h & 0xFF);
  b[at + 1] = static_cast<uint8_t>(h >> 8);
}

std::vector<float> dequant(GgmlType type, const std::vector<uint8_t>& block, int n) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantizeGgml(type, block.data(), n, out.data());
  return out;
}

TEST(GgufDequantize, Q8_0IsCodeTimesScale) {
  std::vector<uint8_t> b(34, 0);
  putHalf(b, 0, 0x3800);  // d = 0.5
  b[2] = 1;
  b[3] = static_cast<uint8_t>(-2);
  b[4] = 127;
  b[5] = static_cast<uint8_t>(-128);
  const auto y = dequant(GgmlType::Q8_0, b, 32);
  EXPECT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], -1.0f);
  EXPECT_EQ(y[2], 63.5f);
  EXPECT_EQ(y[3], -64.0f);
  EXPECT_EQ(y[31], 0.0f);
}

TEST(GgufDequantize, Q4_0LowNibblesFirstOffsetEight) {
  std::vector<uint8_t> b(18, 0x88);  // every nibble 8 -> 0
  putHalf(b, 0, 0x4000);             // d = 2
  b[2] = 0x9F;                       // element 0: 15 - 8 = 7 -> 14; element 16: 9 - 8 = 1 -> 2
  b[3] = 0x08;                       // element 1: 0; element 17: 0 - 8 -> -16
  const auto y = dequant(GgmlType::Q4_0, b, 32);
  EXPECT_EQ(y[0], 14.0f);
  EXPECT_EQ(y[16], 2.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[17], -16.0f);
  EXPECT_EQ(y[5], 0.0f);
}

TEST(GgufDequantize, Q4_1IsScaleTimesCodePlusMin) {
  std::vector<uint8_t> b(20, 0);
  putHalf(b, 0, 0x3400);  // d = 0.25
  putHalf(b, 2, 0xBC00);  // m = -1
  b[4] = 0x4C;            // element 0: 12 -> 2; element 16: 4 -> 0
  const auto y = dequant(GgmlType::Q4_1, b, 32);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[1], -1.0f);
}

// Q4_K / Q5_K share the 12-byte packing of 6-bit scales and mins. Sub-block 0: sc = 3, m = 2;
// sub-block 1: sc = 5, m = 4; sub-block 4 (elements 128..159): sc = (q[8] & 15) | (q[0] >> 6) << 4
// = 1 | 16 = 17, m = (q[8] >> 4) | (q[4] >> 6) << 4 = 2. d = 1, dmin = 0.5.
std::vector<uint8_t> kQuantHeader(size_t size) {
  std::vector<uint8_t> b(size, 0);
  putHalf(b, 0, 0x3C00);
  putHalf(b, 2, 0x3800);
  b[4 + 0] = 0x43;  // sc0 = 3, top bits 01 -> sc4 high bits
  b[4 + 1] = 5;     // sc1
  b[4 + 4] = 2;     // m0
  b[4 + 5] = 4;     // m1
  b[4 + 8] = 0x21;  // sc4 low 1, m4 low 2
  return b;
}

TEST(GgufDequantize, Q4_KUnpacksSixBitScalesAndMins) {
  auto b = kQuantHeader(144);
  b[16] = 0x72;       // element 0: 3*2 - 1 = 5; element 32: 5*7 - 2 = 33
  b[16 + 64] = 0x03;  // element 128: 17*3 - 0.5*2 = 50
  const auto y = dequant(GgmlType::Q4_K, b, 256);
  EXPECT_EQ(y[0], 5.0f);
  EXPECT_EQ(y[32], 33.0f);
  EXPECT_EQ(y[128], 50.0f);
  EXPECT_EQ(y[1], -1.0f);  // code 0: -dmin*m = -1
}

TEST(GgufDequantize, Q5_KAddsTheFifthBitFromQh) {
  auto b = kQuantHeader(176);
  b[16] = 0x13;       // qh[0]: bit 0 (element 0), bit 1 (element 32), bit 4 (element 128)
  b[48] = 0x72;       // qs[0]
  b[48 + 64] = 0x03;  // qs[64]
  const auto y = dequant(GgmlType::Q5_K, b, 256);
  EXPECT_EQ(y[0], 53.0f);     // 3 * (2 + 16) - 1
  EXPECT_EQ(y[32], 113.0f);   // 5 * (7 + 16) - 2
  EXPECT_EQ(y[128], 322.0f);  // 17 * (3 + 16) - 1
  EXPECT_EQ(y[1], -1.0f);
}

TEST(GgufDequantize, Q6_KCombinesLowAndHighBitsMinus32) {
  std::vector<uint8_t> b(210, 0);
  b[0] = 0x21;                        // ql[0]: element 0 low 1, element 64 low 2
  b[32] = 0x05;                       // ql[32]: element 32 low 5, element 96 low 0
  b[128] = 0xE4;                      // qh[0] = 11 10 01 00: high bits of elements 96, 64, 32, 0
  b[192] = static_cast<uint8_t>(-2);  // scale of elements 0..15
  b[194] = 3;                         // 32..47
  b[196] = 1;                         // 64..79
  b[198] = static_cast<uint8_t>(-1);  // 96..111
  putHalf(b, 208, 0x3800);            // d = 0.5
  const auto y = dequant(GgmlType::Q6_K, b, 256);
  EXPECT_EQ(y[0], 31.0f);    // 0.5 * -2 * (1 - 32)
  EXPECT_EQ(y[32], -16.5f);  // 0.5 * 3 * (5 + 16 - 32)
  EXPECT_EQ(y[64], 1.0f);    // 0.5 * 1 * (2 + 32 - 32)
  EXPECT_EQ(y[96], -8.0f);   // 0.5 * -1 * (0 + 48 - 32)
  EXPECT_EQ(y[200], 0.0f);   // scale 0
}

TEST(GgufDequantize, HalfAndBfloat16) {
  const std::vector<uint8_t> f16 = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B};
  const auto y = dequant(GgmlType::F16, f16, 3);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.0f, 65504.0f}));
  const std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x40, 0xC0};
  EXPECT_EQ(dequant(GgmlType::BF16, bf16, 2), (std::vector<float>{1.0f, -3.0f}));
}

TEST(GgufReader, ParsesTheTinyModel) {
  const auto f = GgufFile::open(kData + "/gguf/tiny_llama.gguf");
  const GgufHeader& h = f->header();
  EXPECT_EQ(h.version, 3u);
  EXPECT_EQ(h.alignment, 32u);
  EXPECT_EQ(h.tensors.size(), 11u);
  EXPECT_EQ(h.dataOffset % 32, 0u);
  ASSERT_NE(h.find("general.architecture"), nullptr);
  EXPECT_EQ(*h.find("general.architecture")->asString(), "llama");
  EXPECT_EQ(h.find("llama.block_count")->asInteger(), 1);
  EXPECT_DOUBLE_EQ(*h.find("llama.rope.freq_base")->asNumber(), 100.0);
  EXPECT_EQ(h.find("tokenizer.ggml.tokens")->asArray()->items.size(), 16u);
  const GgufTensorInfo* q = h.findTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dims, (std::vector<uint64_t>{8, 8}));  // [in, out]
  EXPECT_EQ(q->bytes, 256u);
  const ModelConfig c = readModelConfig(*f);
  EXPECT_EQ(c.numLayers, 1);
  EXPECT_EQ(c.headDim, 4);
  EXPECT_EQ(c.numKvHeads, 1);
  EXPECT_EQ(c.vocab, 16);
  EXPECT_TRUE(c.tiedOutput);
  EXPECT_EQ(modelWeightBytes(c), (16 * 8 + 8 + 2 * 8 + 16 * 8 + 8 * 8 + 3 * 8 * 8) * 4u);
}

TEST(GgufReader, EveryPrefixOfAFileIsRefusedCleanly) {
  const auto bytes = fileBytes(kData + "/gguf/tiny_llama.gguf");
  ASSERT_GT(bytes.size(), 1000u);
  for (size_t n = 0; n < bytes.size(); n += 7) {
    const std::span<const uint8_t> prefix(bytes.data(), n);
    EXPECT_THROW(readGgufHeader(prefix, "prefix.gguf"), Error) << n;
  }
  EXPECT_NO_THROW(readGgufHeader(bytes, "whole.gguf"));
}

TEST(GgufReader, MalformedCorpusIsRefusedNamingFileAndProblem) {
  const std::string dir = kData + "/gguf/malformed/";
  std::ifstream expected(dir + "expected.txt");
  std::string line;
  int checked = 0;
  while (std::getline(expected, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    const std::string name = line.substr(0, tab), phrase = line.substr(tab + 1);
    try {
      ModelLoadOptions options;
      loadDecoderModel(dir + name, options);
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput) << name;
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << name << ": " << e.what();
    }
    ++checked;
  }
  EXPECT_GE(checked, 29);
}

// A GGUF header: magic, version 3, the two counts, then `rest` (little-endian, as written).
std::vector<uint8_t> headerBytes(uint64_t tensors, uint64_t metadata,
                                 const std::vector<uint64_t>& rest = {}) {
  std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
  auto put = [&b](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(tensors, 8);
  put(metadata, 8);
  for (uint64_t v : rest) put(v, 8);
  return b;
}

std::string headerRefusal(const std::vector<uint8_t>& bytes, uint64_t fileSize) {
  try {
    parseGgufHeader(bytes, fileSize, "sparse.gguf");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  } catch (const GgufNeedMoreBytes&) {
    return "needs more bytes";
  }
  return "accepted";
}

// A sparse file is tiny on disk and any size by its metadata: counts checked only against that
// size let a few bytes ask for hundreds of GB (found reviewing the reader while fuzzing it).
TEST(GgufReader, SparseFileCannotClaimBillionsOfTensors) {
  const uint64_t size = uint64_t{64} << 30;
  EXPECT_NE(headerRefusal(headerBytes(uint64_t{1} << 31, 0), size)
                .find("tensor count 2147483648 is more than 65536"),
            std::string::npos);
  // At the cap the count is fine, and only what the bytes at hand hold is parsed (reserved).
  EXPECT_EQ(headerRefusal(headerBytes(65536, 0), size), "needs more bytes");
  EXPECT_NE(headerRefusal(headerBytes(65537, 0), size).find("is more than 65536"), std::string::npos);
}

// The specification caps keys at 65535 bytes; a longer one is refused before it is read
// (a key as long as a sparse file would otherwise be read and quoted whole).
TEST(GgufReader, KeyLongerThanTheSpecificationAllowsIsRefused) {
  const uint64_t size = uint64_t{1} << 30;
  EXPECT_NE(headerRefusal(headerBytes(0, 1, {65536}), size).find("longer than allowed (65535)"),
            std::string::npos);
  EXPECT_EQ(headerRefusal(headerBytes(0, 1, {65535}), size), "needs more bytes");
}

TEST(GgufReader, SparseFileCannotClaimBillionsOfArrayValues) {
  const uint64_t size = uint64_t{16} << 30;
  // key "x" (length 1, then the byte), type Array (9), element type UInt8 (0), count.
  const auto arrayOf = [](uint64_t count) {
    auto b = headerBytes(0, 1, {1});
    b.push_back('x');
    for (uint8_t v : {9, 0, 0, 0, 0, 0, 0, 0}) b.push_back(v);
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(count >> (8 * i)));
    return b;
  };
  const std::string refusal = headerRefusal(arrayOf(uint64_t{1} << 33), size);
  EXPECT_NE(refusal.find("metadata \"x\""), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("more than 8388608 values in all"), std::string::npos) << refusal;
  EXPECT_EQ(headerRefusal(arrayOf(uint64_t{1} << 23), size), "needs more bytes");
  EXPECT_NE(headerRefusal(arrayOf((uint64_t{1} << 23) + 1), size).find("8388608"), std::string::npos);
  // "In all": an array of 2 arrays (type Array, element type Array = 9), the first one of
  // 2^23 - 1 values: 2 + 2^23 - 1 is one over the cap.
  auto nested = headerBytes(0, 1, {1});
  nested.push_back('x');
  for (uint8_t v : {9, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) nested.push_back(v);
  const uint64_t inner = (uint64_t{1} << 23) - 1;
  for (int i = 0; i < 8; ++i) nested.push_back(static_cast<uint8_t>(inner >> (8 * i)));
  EXPECT_NE(headerRefusal(nested, size).find("8388608 values in all"), std::string::npos);
}

TEST(ModelLoader, RefusesAModelAboveTheMemoryBudget) {
  ModelLoadOptions options;
  options.memoryBudget = 2143;  // the tiny model needs 536 floats = 2144 bytes
  try {
    loadDecoderModel(kData + "/gguf/tiny_llama.gguf", options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("memory budget"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("token_embd.weight"), std::string::npos) << e.what();
  }
  options.memoryBudget = 2144;
  EXPECT_NO_THROW(loadDecoderModel(kData + "/gguf/tiny_llama.gguf", options));
}

TEST(ModelLoader, UndoesLlamaCppRotaryRowPermutation) {
  // One head of D = 4, one column: stored rows (2i + s) = HF rows (s*2 + i): [h0 h2 h1 h3] -> [h0 h1 h2 h3].
  std::vector<float> rows = {10, 12, 11, 13, 20, 22, 21, 23};
  unpermuteRopeRows(rows.data(), 2, 4, 1);
  EXPECT_EQ(rows, (std::vector<float>{10, 11, 12, 13, 20, 21, 22, 23}));
}

}  // namespace
}  // namespace kvq
