// The tiny test model (tests/data/gguf/tiny_llama.gguf: 1 layer, 1 kv head, head_dim 4, hidden 8,
// vocab 16) and a dump of its own keys/values, for the model-pass tests.
#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kvq/dump/dump_writer.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/model/rope.h"
#include "test_util.h"

namespace kvq::test {

inline const std::string kTinyModel = std::string(KVQ_TEST_DATA_DIR) + "/gguf/tiny_llama.gguf";

// A dump matching tiny_llama.gguf (1 layer, 1 kv head, head_dim 4, vocab 16): two sequences.
// layout Interleaved: its keys in llama.cpp's rotary channel order (rope_layout "interleaved");
// postRope: keys stored after RoPE (key_rope "post").
inline std::string writeTinyDump(const std::filesystem::path& dir, const DecoderModel& model,
                                 RopeLayout layout = RopeLayout::Half, bool postRope = false) {
  const int64_t tokens = 70;
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  std::mt19937 rng(9);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % 16);
  DumpHeader h = dumpHeader("tiny", 1, 1, 4, tokens);
  h.keyRope = postRope ? "post" : "pre";
  h.ropeDim = model.config.rope.dim;
  h.ropeLayout = ropeLayoutName(layout);
  const std::string path = (dir / "tiny.h5").string();
  auto w = DumpWriter::create(path, h);
  // Store the model's own pre-RoPE keys/values of each sequence, as a dumper would.
  struct Capture : KvCacheHook {
    std::vector<float> k, v;
    void apply(int, int64_t n, float* keys, float* values) override {
      k.insert(k.end(), keys, keys + n * 4);
      v.insert(v.end(), values, values + n * 4);
    }
  } capture;
  DecoderPass pass(model);
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, 40}, {40, 70}}) {
    std::vector<float> x(static_cast<size_t>((e - b) * 8));
    pass.embed(ids.data() + b, e - b, x.data());
    pass.runLayers(x.data(), e - b, 0, 1, &capture, nullptr);
    if (postRope) {  // this sequence's keys, positions 0.., rotated as the model rotates them
      applyRope(capture.k.data() + b * 4, e - b, 1, 4, 4, 0, ropeInverseFrequencies(model.config.rope));
    }
  }
  const std::vector<int> at = channelsInLayout(layout, model.config.rope.dim, 4);
  std::vector<float> keys(capture.k.size());
  for (size_t r = 0; r < capture.k.size() / 4; ++r) {
    for (size_t c = 0; c < 4; ++c) keys[r * 4 + static_cast<size_t>(at[c])] = capture.k[r * 4 + c];
  }
  w->writeLayer(0, slabOf(tokens, 1, 4, keys), slabOf(tokens, 1, 4, capture.v));
  w->writeTokenIds(ids);
  w->writeSequenceStarts({0, 40});
  w->commit();
  return path;
}

}  // namespace kvq::test
