// The quantized key/value cache of the model pass: a KvCacheHook that replaces the pre-RoPE keys
// and the values of chosen layers by their RVQ reconstruction (a codebook file, first k stages)
// or by KIVI-b scalar quantization, optionally with KIVI's full-precision recent window
// (docs/model.md, docs/metrics.md).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kvq/io/codebook_file.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/rvq/backend.h"
#include "kvq/study/scalar_baseline.h"

namespace kvq {

enum class CacheVariantKind { Identity, Rvq, Kivi };

struct CacheVariantSpec {
  CacheVariantKind kind = CacheVariantKind::Identity;
  int depth = 0;  // Rvq: stages used, 1..K of the codebook file
  // Kivi: bits b, token group n_t (keys, per channel), channel group n_c (values, per token), and
  // the full-precision recent window R (0 = none; else a multiple of n_t, as KIVI requires).
  int bits = 0;
  int tokenGroup = 32;
  int channelGroup = 32;
  int window = 0;

  // "identity", "rvq-4", "kivi-2", "kivi-2-r128".
  std::string label() const;
};

// Bits per channel of a variant's cache holding a sequence of `tokens` tokens:
//   Rvq   K log2(C)/g + 16/D with K = depth (docs/metrics.md; codebook storage not included)
//   Kivi  the mean of keys and values, each (Q (b + 32/n) + F 16) / tokens where F tokens are
//         held at full precision: keys F = tokens - floor(tokens/R) R, values F = min(R, tokens)
//         (F = 0 without a window)
//   Identity 16 (the fp16 cache every ratio compares with)
double cacheBitsPerChannel(const CacheVariantSpec& spec, const CodebookFile* codebooks, int headDim,
                           int64_t tokens);

// Throws Error(BadInput) naming the option for a variant that cannot run: a depth outside 1..K,
// KIVI bits outside 2..8, groups that do not divide head_dim, a window not a multiple of n_t.
void validateCacheVariant(const CacheVariantSpec& spec, const CodebookFile* codebooks, int headDim);

class CacheQuantizer : public KvCacheHook {
 public:
  // layers: the model layers whose cache is replaced; kvHeads, headDim: the cache's shape.
  // codebooks (Rvq only) must hold keys and values quantizers for each layer (checked: BadInput
  // naming codebookPath and the layer); backend encodes the RVQ codes. Both must outlive this.
  CacheQuantizer(const CacheVariantSpec& spec, const std::set<int>& layers, int kvHeads, int headDim,
                 const CodebookFile* codebooks, const std::string& codebookPath, Backend* backend);

  void apply(int layer, int64_t tokens, float* keys, float* values) override;
  int recentWindow(int layer) const override;

 private:
  void applyRvq(const QuantizerSet& set, int64_t tokens, float* x);
  void rvqVectors(const QuantizerSet& set, const Codebooks& books, float* x, int64_t n);
  const QuantizerSet& set(int layer, Kind kind) const;

  CacheVariantSpec m_spec;
  std::set<int> m_layers;
  int m_kvHeads, m_headDim;
  const CodebookFile* m_codebooks;
  Backend* m_backend;
  std::vector<Codebooks> m_truncated;    // per codebook set x head: the first `depth` stages
  std::vector<size_t> m_truncatedBegin;  // per set: its first entry in m_truncated
};

}  // namespace kvq
