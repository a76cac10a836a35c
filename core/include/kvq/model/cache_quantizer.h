// The quantized key/value cache of the model pass: a KvCacheHook that replaces the pre-RoPE keys
// and the values of chosen layers by their RVQ reconstruction (a codebook file, first k stages,
// the same k everywhere or an allocation per layer x kind) or by KIVI-b scalar quantization,
// optionally with tokens kept exact: the first S tokens of the sequence (attention sinks) and a
// recent window (KIVI's, or RVQ's sliding one) (docs/model.md, docs/metrics.md).
#pragma once

#include <array>
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
  // Kivi: KIVI's window (keys leave it R tokens at a time). Rvq: a sliding window, query t reads
  // the keys and values of tokens t-R+1..t exact.
  int window = 0;
  int sinks = 0;  // Rvq, Kivi: the first S tokens of the sequence stay exact (keys and values)
  // Rvq: an allocation, per layer {keys depth, values depth} (0 = that kind stays exact); empty =
  // `depth` for every quantized layer and kind.
  std::vector<std::array<int, 2>> layerDepths;
  std::string name;  // label of an allocation ("alloc-3.00b"); empty: derived

  // "identity", "rvq-4", "rvq-4-s4-r64", "kivi-2", "kivi-2-r128", or `name` (+ "-s4-r64").
  std::string label() const;
  // Rvq: the depth of (layer, kind): layerDepths when given, else depth.
  int depthOf(int layer, Kind kind) const;
};

// RVQ at `depth` stages for every quantized layer and kind, the first `sinks` tokens and a sliding
// window of `window` tokens exact.
CacheVariantSpec rvqVariant(int depth, int sinks, int window);

// Where the bits of a cache are counted: the sequence length that exact tokens are shared over,
// and the number of cached tokens (all sequences of a batch) that codebook storage is amortised
// over (0 = codebooks not counted).
struct CacheCostBasis {
  int64_t tokens = 0;
  int64_t amortiseTokens = 0;
};

// Tokens of a sequence of `tokens` that an RVQ cache with S sinks and a sliding window R holds
// exact: min(tokens, S + R).
int64_t rvqExactTokens(int sinks, int window, int64_t tokens);

// Bits per channel of one RVQ quantizer (layer x kind) of depth k (0 = exact: 16) of `codebooks`:
//   (1 - f) (k log2(C) / g + 16 / D) + 16 f                  codes, per-vector fp16 scale, exact tokens
//   + 32 k C g copies / (amortiseTokens H_kv D)              float32 codebooks (copies = H_kv per head, else
//   1)
// with f = rvqExactTokens / tokens the exact share.
double rvqQuantizerBits(const CodebookFile& codebooks, int depth, int sinks, int window,
                        const CacheCostBasis& basis);

// Bits per channel of a variant's cache holding a sequence of basis.tokens tokens:
//   Rvq   the mean of rvqQuantizerBits over the quantized `layers` x {keys, values}
//   Kivi  the mean of keys and values, each (Q (b + 32/n) + F 16) / tokens where F tokens are
//         held at full precision: keys F = tokens - floor(tokens/R) R, values F = min(R, tokens)
//         (F = 0 without a window), plus S sinks: F = min(tokens, F + S)
//   Identity 16 (the fp16 cache every ratio compares with)
double cacheBitsPerChannel(const CacheVariantSpec& spec, const CodebookFile* codebooks,
                           const std::vector<int>& layers, const CacheCostBasis& basis);

// Throws Error(BadInput) naming the option for a variant that cannot run: a depth outside 1..K,
// KIVI bits outside 1..8, groups that do not divide head_dim, a KIVI window not a multiple of
// n_t, negative sinks or window, an allocated depth outside 0..K.
void validateCacheVariant(const CacheVariantSpec& spec, const CodebookFile* codebooks, int headDim);

class CacheQuantizer : public KvCacheHook {
 public:
  // layers: the model layers whose cache is replaced; kvHeads, headDim: the cache's shape.
  // Exact tokens are the unquantized float32 keys/values (counted as fp16): the first S rows
  // come back from apply() bit for bit, the window through recentWindow().
  // codebooks (Rvq only) must hold keys and values quantizers for each layer (checked: BadInput
  // naming codebookPath and the layer); backend encodes the RVQ codes. Both must outlive this.
  CacheQuantizer(const CacheVariantSpec& spec, const std::set<int>& layers, int kvHeads, int headDim,
                 const CodebookFile* codebooks, const std::string& codebookPath, Backend* backend);

  void apply(int layer, int64_t tokens, float* keys, float* values) override;
  int recentWindow(int layer) const override;
  bool slidingKeyWindow(int layer) const override;

 private:
  void applyKivi(int64_t tokens, float* keys, float* values) const;
  void applyRvq(const QuantizerSet& set, int64_t tokens, float* x);
  // n vectors through one quantizer; means/meanRows as scaleAndGroup's.
  void rvqVectors(const QuantizerSet& set, const Codebooks& books, float* x, int64_t n, const float* means,
                  int meanRows);
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
