// Model in the loop: perplexity and KL divergence of the model's next-token distribution with a
// quantized key/value cache, on a dump's own tokens (docs/model.md, docs/metrics.md).
//
// Per sequence of the dump (/sequence_starts; one sequence when absent): the reference pass
// (float32 cache) and, for every variant, the same pass with the cache of the chosen layers
// replaced (cache_quantizer.h). Layers before the first quantized one are shared: the variants
// start from the reference's residual stream there. Token t+1 is predicted from tokens 0..t of
// its sequence, t = 0..n-2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/cache_quantizer.h"
#include "kvq/model/decoder_model.h"

namespace kvq {

struct PplOptions {
  std::vector<CacheVariantSpec> variants;
  std::vector<int> layers;                  // quantized layers; empty = the codebook file's, else all
  const CodebookFile* codebooks = nullptr;  // needed by Rvq variants
  std::string codebookPath;
  // cpu | cuda | auto: the backend of RVQ encoding and of the pass's weight products (cuda: cuBLAS,
  // when gpu/ registered it; auto falls back to the CPU and says why in PplReport::passNote).
  std::string backend = "auto";
  bool allowTf32 = false;  // cuBLAS in TensorFloat-32 (weight_gemm.h: past the fidelity tolerance)
  int threads = 0;
  int64_t maxTokens = 0;  // per sequence (its first tokens); 0 = all
  bool checkDump = true;  // compare the reference keys/values with the dump's stored layers
  // Cached tokens the RVQ codebooks' storage is amortised over in bitsPerChannel (0 = not counted).
  int64_t amortiseTokens = 0;
};

// Sums over predicted tokens. KL is KL(p_ref || p_q) in nats; top-1 agreement counts tokens
// whose argmax (lowest index among ties) is the same in both.
struct TokenStats {
  int64_t tokens = 0;
  double nll = 0;  // sum of -log p(token)
  double kl = 0;
  int64_t top1 = 0;

  double perplexity() const;  // exp(nll / tokens)
  double meanKl() const;      // kl / tokens
  double top1Rate() const;    // top1 / tokens
  void add(const TokenStats& o);
};

struct VariantReport {
  CacheVariantSpec spec;
  std::string label;
  double bitsPerChannel = 0;  // token-weighted over the sequences (cache_quantizer.h)
  TokenStats overall;
  std::vector<TokenStats> sequences;
};

// How well the reference pass reproduces a stored layer: ||x - x_dump|| / ||x_dump|| (L2 over
// every element of the evaluated tokens) and the largest |x - x_dump|.
struct DumpAgreement {
  int layer = 0;
  Kind kind = Kind::Keys;
  double relativeError = 0;
  double maxAbsError = 0;
};

struct PplReport {
  std::string dumpPath, modelPath, modelName, codebookPath;
  std::vector<int> layers;                              // the quantized layers
  std::vector<int64_t> sequenceStarts, sequenceTokens;  // evaluated tokens per sequence
  TokenStats reference;
  std::vector<TokenStats> referenceSequences;
  std::vector<VariantReport> variants;
  std::vector<DumpAgreement> agreement;
  std::string backend;               // the RVQ backend used ("" without RVQ variants)
  std::string passEngine, passNote;  // the weight products' engine; the line saying why that one
  double seconds = 0;
};

// Throws Error(BadInput) naming the dump when the model does not match it (layers, kv heads,
// head_dim), it has no /tokens, or a token id is outside the model's vocabulary.
void checkModelMatchesDump(const DecoderModel& model, const DumpReader& dump);

// The quantized layers of a run: options.layers, else the codebook file's layers (those with
// keys and values), else every layer of the model. Throws BadInput for a layer out of range.
std::vector<int> quantizedLayers(const PplOptions& options, int numLayers);

// Runs the evaluation. Progress and cancel through control.
PplReport evaluatePerplexity(const DecoderModel& model, const DumpReader& dump, const PplOptions& options,
                             const TaskControl* control = nullptr);

}  // namespace kvq
