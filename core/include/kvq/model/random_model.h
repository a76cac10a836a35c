// A decoder model with random weights and no file behind it: for benchmarks on a machine that
// cannot fetch the GGUF (the GPU machine reaches no network) and for tests of shapes that no
// test file has. Its perplexity means nothing; its products and attention cost what the real
// model's do.
#pragma once

#include <cstdint>
#include <memory>

#include "kvq/model/decoder_model.h"

namespace kvq {

// config: numLayers, hidden, numQHeads, numKvHeads, headDim, ffn, vocab, rmsEps, rope (dim > 0),
// tiedOutput, qkvBias, outputBias as wanted (architecture/name default to "llama"/"random").
// Weights: each matrix ~ N(0, 1/in) so that activations keep their scale through the layers,
// biases ~ N(0, 0.01), norms 1, embedding (and a separate head) ~ N(0, 1); deterministic in seed.
// Throws Error(BadInput) for shapes the pass cannot run (H_q not a multiple of H_kv, odd rope.dim).
std::unique_ptr<DecoderModel> makeRandomDecoderModel(ModelConfig config, uint64_t seed);

// The shape of a decoder: layers; hidden channels; H_q query and H_kv key/value heads of D
// channels; the feed-forward length; the vocabulary.
struct DecoderShape {
  int layers, hidden, qHeads, kvHeads, headDim, ffn, vocab;
};

// A configuration of that shape, RoPE over whole heads (rope.dim = D), ModelConfig's defaults for
// the rest (architecture and name empty, no biases, a separate head).
ModelConfig decoderConfig(const DecoderShape& shape);

// SmolLM2-135M's configuration (the bundled sample's model): 30 layers, hidden 576, 9 query and
// 3 key/value heads of 64 channels, ffn 1536, vocabulary 49 152, RoPE theta 100 000, tied head.
ModelConfig smolLm2Config();

}  // namespace kvq
