// A decoder-only transformer loaded from a GGUF file: its configuration (from the metadata) and
// its weights dequantized to float32 (docs/model.md).
//
// Architectures: "llama" (Llama 2/3, Mistral, SmolLM; optional q/k/v/o biases) and "qwen2"
// (q/k/v biases). Anything else is refused with a message naming the architecture. For "llama"
// files llama.cpp's converter permuted the rows of attn_q/attn_k (and their biases) within each
// head so that its rotary embedding could rotate adjacent pairs: stored row h*D + 2i + s is
// Hugging Face row h*D + s*D/2 + i. The loader undoes it, so keys and queries have the Hugging
// Face layout that `rope.h` rotates and that dumps store. "qwen2" files are not permuted.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/model/rope.h"

namespace kvq {

struct ModelConfig {
  std::string architecture;  // "llama" or "qwen2"
  std::string name;          // general.name (or the file name)
  int numLayers = 0;
  int hidden = 0;      // embedding length
  int numQHeads = 0;   // H_q
  int numKvHeads = 0;  // H_kv (GQA: H_q is a multiple of it)
  int headDim = 0;     // D
  int ffn = 0;         // feed-forward length
  int vocab = 0;
  double rmsEps = 1e-5;
  RopeConfig rope;
  bool tiedOutput = false;  // the output head is token_embd (no output.weight)
  bool qkvBias = false;     // attn_q/k/v.bias present
  bool outputBias = false;  // attn_output.bias present

  int qkvRows() const { return (numQHeads + 2 * numKvHeads) * headDim; }
};

// Weights of one block. Matrices are [out, in] row-major float32 (GGUF storage order), so that
// y = x W^T is one GEMM.
struct LayerWeights {
  std::vector<float> attnNorm;  // [hidden]
  std::vector<float> wqkv;      // [(H_q + 2 H_kv) D, hidden]: q rows, then k, then v (HF layout)
  std::vector<float> bqkv;      // [(H_q + 2 H_kv) D] or empty
  std::vector<float> wo;        // [hidden, H_q D]
  std::vector<float> bo;        // [hidden] or empty
  std::vector<float> ffnNorm;   // [hidden]
  std::vector<float> wGateUp;   // [2 ffn, hidden]: gate rows, then up rows
  std::vector<float> wDown;     // [hidden, ffn]
};

struct DecoderModel {
  std::string path;
  ModelConfig config;
  std::vector<float> embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::vector<float> outputNorm;  // [hidden]
  std::vector<float> output;      // [vocab, hidden], empty when tied to the embedding

  const std::vector<float>& head() const { return config.tiedOutput ? embedding : output; }
};

struct ModelLoadOptions {
  // Largest float32 weight size accepted, in bytes; a model above it is refused (BadInput)
  // before anything is allocated.
  uint64_t memoryBudget = uint64_t{8} << 30;
  const TaskControl* control = nullptr;  // progress/cancel while dequantizing
};

// The configuration a GGUF file's metadata describes; throws Error(BadInput) naming the file
// and key for an unsupported architecture, a missing or absurd value, or tensors whose shapes
// disagree with it.
class GgufFile;
ModelConfig readModelConfig(const GgufFile& file);

// Bytes of float32 weights the model needs (what memoryBudget is compared with).
uint64_t modelWeightBytes(const ModelConfig& config);

// Opens, checks and dequantizes a model. Throws Error(BadInput) naming the file and tensor.
std::unique_ptr<DecoderModel> loadDecoderModel(const std::string& path, const ModelLoadOptions& options = {});

// llama.cpp's q/k row order -> Hugging Face order, in place.
//   rows: [heads * headDim, cols] row-major (cols = 1 for a bias)
void unpermuteRopeRows(float* rows, int heads, int headDim, int64_t cols);

}  // namespace kvq
