// Streaming accumulators for every number of docs/metrics.md.
//
// Each accumulator takes chunks of vectors one after another (bounded memory) and
// can be merged with another of the same shape, so a layer, a head or the whole
// dump is summarised exactly from raw sums, never from averages of averages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvq/rvq/codebooks.h"

namespace kvq {

// Raw sums of one set of vectors; the ratios derive from them.
struct ErrorSums {
  double errorEnergy = 0;   // sum ||x - x~||^2 over every channel of every vector
  double signalEnergy = 0;  // sum ||x||^2
  double cosineSum = 0;     // sum over vectors of <x, x~> / (||x|| ||x~||)
  int64_t vectors = 0;

  double relativeError() const;  // errorEnergy / signalEnergy (0 when both are 0)
  double snrDb() const;          // -10 log10(relativeError); +inf for an exact reconstruction
  double meanCosine() const;     // cosineSum / vectors (0 when empty)
  void merge(const ErrorSums& other);
};

// Cosine of one pair. Convention for zero vectors: both zero -> 1 (exact), one
// zero -> 0. x, xr: [dim].
double cosineSimilarity(const float* x, const float* xr, int dim);

// Accumulates the error of reconstructions of ORIGINAL token-head vectors.
class ErrorAccumulator {
 public:
  // x, xr: [n, dim] row-major float32 (original vectors and their reconstruction).
  void add(const float* x, const float* xr, int64_t n, int dim);
  // Rows with stride (e.g. one head of a [t, H, D] slab: stride = H*D).
  void addStrided(const float* x, const float* xr, int64_t n, int dim, int64_t stride);
  const ErrorSums& sums() const { return m_sums; }
  void merge(const ErrorAccumulator& other) { m_sums.merge(other.m_sums); }

 private:
  ErrorSums m_sums;
};

// Entry frequencies of one codebook stage over the evaluated set.
struct StageUsage {
  std::vector<int64_t> histogram;  // [C] how many vectors chose each entry
  int64_t total = 0;               // sum of histogram
  double fractionUsed = 0;         // entries used at least once / C
  double perplexity = 0;           // exp(-sum p_i log p_i), p_i = histogram[i]/total (0 log 0 = 0)
  int deadEntries = 0;             // entries never used
};

// Counts codes per stage: K histograms of C bins.
class UsageAccumulator {
 public:
  UsageAccumulator() = default;
  UsageAccumulator(int depth, int codebookSize);
  // codes: [n, K] row-major (the layout of encodeRvq)
  void add(const int32_t* codes, int64_t n);
  void merge(const UsageAccumulator& other);
  // Usage of stage k (0-based), with the derived numbers filled in.
  StageUsage stage(int k) const;
  std::vector<StageUsage> stages() const;  // [K]
  int depth() const { return m_depth; }

 private:
  int m_depth = 0;
  int m_size = 0;
  std::vector<int64_t> m_counts;  // [K, C]
};

// Usage numbers from a histogram (fills fractionUsed, perplexity, deadEntries).
StageUsage usageFromHistogram(std::vector<int64_t> histogram);

// Storage of one quantizer's codebooks in bits: K * C * g * 32 (float32 entries).
double codebookStorageBits(int codebookSize, int depth, int groupSize);

// Bits per channel with codebook storage amortised (docs/metrics.md): b plus
// quantizers * K*C*g*32 bits spread over amortisedVectors token-head vectors of
// headDim channels: b + quantizers * storage / (amortisedVectors * headDim).
double amortisedBitsPerChannel(double bitsPerChannel, int quantizers, int codebookSize, int depth,
                               int groupSize, int64_t amortisedVectors, int headDim);

// ---- error by depth from one encoding pass ----------------------------------

// Error of the reconstruction from the first k stages, k = 1..K, on original
// vectors, per head: decodes incrementally (adds stage k to the running sum,
// unpermutes and unscales, compares with x).
class DepthErrorAccumulator {
 public:
  DepthErrorAccumulator() = default;
  DepthErrorAccumulator(int heads, int depth);
  // x:      [n, D] original vectors; head: [n] head of each row (nullptr: head 0)
  // codes:  [n * D/g, K] from encodeRvq of the scaled, grouped x
  // scales: [n] per-vector scales from scaleAndGroup; order: [D] channel order
  // weights, means, meanRows: scaleAndGroup's (or nullptr); the error is of the original x
  void add(const float* x, const int* head, int64_t n, int headDim, const int32_t* codes,
           const Codebooks& books, const std::vector<int>& order, const float* scales,
           const float* weights = nullptr, const float* means = nullptr, int meanRows = 1);
  void merge(const DepthErrorAccumulator& other);
  ErrorSums sums(int depth) const;            // all heads, first `depth` stages (1..K)
  ErrorSums sums(int head, int depth) const;  // one head
  int heads() const { return m_heads; }
  int depth() const { return m_depth; }

 private:
  int m_heads = 0;
  int m_depth = 0;
  std::vector<ErrorAccumulator> m_acc;  // [heads, K]
};

}  // namespace kvq
