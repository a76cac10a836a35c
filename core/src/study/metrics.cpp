#include "kvq/study/metrics.h"

#include <cmath>
#include <limits>

#include "kvq/base/error.h"
#include "kvq/rvq/preprocess.h"

namespace kvq {

double ErrorSums::relativeError() const {
  if (signalEnergy <= 0) return errorEnergy > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  return errorEnergy / signalEnergy;
}

double ErrorSums::snrDb() const {
  const double rel = relativeError();
  if (rel <= 0) return std::numeric_limits<double>::infinity();
  return -10.0 * std::log10(rel);
}

double ErrorSums::meanCosine() const {
  return vectors > 0 ? cosineSum / static_cast<double>(vectors) : 0.0;
}

void ErrorSums::merge(const ErrorSums& other) {
  errorEnergy += other.errorEnergy;
  signalEnergy += other.signalEnergy;
  cosineSum += other.cosineSum;
  vectors += other.vectors;
}

double cosineSimilarity(const float* x, const float* xr, int dim) {
  double dot = 0, nx = 0, nr = 0;
  for (int c = 0; c < dim; ++c) {
    dot += static_cast<double>(x[c]) * xr[c];
    nx += static_cast<double>(x[c]) * x[c];
    nr += static_cast<double>(xr[c]) * xr[c];
  }
  if (nx == 0 && nr == 0) return 1.0;
  if (nx == 0 || nr == 0) return 0.0;
  return dot / (std::sqrt(nx) * std::sqrt(nr));
}

void ErrorAccumulator::add(const float* x, const float* xr, int64_t n, int dim) {
  addStrided(x, xr, n, dim, dim);
}

void ErrorAccumulator::addStrided(const float* x, const float* xr, int64_t n, int dim, int64_t stride) {
  for (int64_t i = 0; i < n; ++i) {
    const float* a = x + i * stride;
    const float* b = xr + i * stride;
    double err = 0, sig = 0;
    for (int c = 0; c < dim; ++c) {
      const double d = static_cast<double>(a[c]) - b[c];
      err += d * d;
      sig += static_cast<double>(a[c]) * a[c];
    }
    m_sums.errorEnergy += err;
    m_sums.signalEnergy += sig;
    m_sums.cosineSum += cosineSimilarity(a, b, dim);
  }
  m_sums.vectors += n;
}

UsageAccumulator::UsageAccumulator(int depth, int codebookSize)
    : m_depth(depth), m_size(codebookSize), m_counts(static_cast<size_t>(depth) * codebookSize, 0) {}

void UsageAccumulator::add(const int32_t* codes, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < m_depth; ++k) {
      const int32_t code = codes[i * m_depth + k];
      if (code < 0 || code >= m_size) throwInternal("usage", "code out of range");
      ++m_counts[static_cast<size_t>(k) * m_size + code];
    }
  }
}

void UsageAccumulator::merge(const UsageAccumulator& other) {
  if (other.m_depth != m_depth || other.m_size != m_size) throwInternal("usage", "shape mismatch in merge");
  for (size_t i = 0; i < m_counts.size(); ++i) m_counts[i] += other.m_counts[i];
}

StageUsage usageFromHistogram(std::vector<int64_t> histogram) {
  StageUsage usage;
  usage.histogram = std::move(histogram);
  for (int64_t count : usage.histogram) usage.total += count;
  int used = 0;
  double entropy = 0;
  for (int64_t count : usage.histogram) {
    if (count == 0) continue;
    ++used;
    const double p = static_cast<double>(count) / static_cast<double>(usage.total);
    entropy -= p * std::log(p);
  }
  const auto size = static_cast<int>(usage.histogram.size());
  usage.deadEntries = size - used;
  usage.fractionUsed = size > 0 ? static_cast<double>(used) / size : 0.0;
  usage.perplexity = usage.total > 0 ? std::exp(entropy) : 0.0;
  return usage;
}

StageUsage UsageAccumulator::stage(int k) const {
  const auto begin = m_counts.begin() + static_cast<std::ptrdiff_t>(k) * m_size;
  return usageFromHistogram(std::vector<int64_t>(begin, begin + m_size));
}

std::vector<StageUsage> UsageAccumulator::stages() const {
  std::vector<StageUsage> out;
  out.reserve(static_cast<size_t>(m_depth));
  for (int k = 0; k < m_depth; ++k) out.push_back(stage(k));
  return out;
}

double codebookStorageBits(int codebookSize, int depth, int groupSize) {
  return static_cast<double>(depth) * codebookSize * groupSize * 32.0;
}

double amortisedBitsPerChannel(double bitsPerChannel, int quantizers, int codebookSize, int depth,
                               int groupSize, int64_t amortisedVectors, int headDim) {
  if (amortisedVectors <= 0 || headDim <= 0) return std::numeric_limits<double>::infinity();
  const double storage = quantizers * codebookStorageBits(codebookSize, depth, groupSize);
  return bitsPerChannel + storage / (static_cast<double>(amortisedVectors) * headDim);
}

DepthErrorAccumulator::DepthErrorAccumulator(int heads, int depth)
    : m_heads(heads), m_depth(depth), m_acc(static_cast<size_t>(heads) * depth) {}

void DepthErrorAccumulator::add(const float* x, const int* head, int64_t n, int headDim, const int32_t* codes,
                                const Codebooks& books, const std::vector<int>& order, const float* scales,
                                const float* weights, const float* means, int meanRows) {
  const int g = books.dim;
  const int groups = headDim / g;
  const int depth = books.depth;
  if (depth != m_depth) throwInternal("depth error", "codebook depth differs from the accumulator's");
  // Running sum of the decoded group vectors (scaled, permuted space) and its
  // unscaled, unpermuted image: one stage added per depth.
  std::vector<float> partial(static_cast<size_t>(n) * headDim, 0.0f);
  std::vector<float> recon(static_cast<size_t>(n) * headDim);
  for (int k = 0; k < depth; ++k) {
    for (int64_t r = 0; r < n * groups; ++r) {
      const float* entry = books.entry(k, codes[r * depth + k]);
      float* dst = partial.data() + r * g;
      for (int c = 0; c < g; ++c) dst[c] += entry[c];
    }
    ungroupAndUnscale(partial.data(), scales, n, headDim, order, g, recon.data(), weights, means, meanRows);
    for (int64_t i = 0; i < n; ++i) {
      const int h = head != nullptr ? head[i] : 0;
      m_acc[static_cast<size_t>(h) * m_depth + k].add(x + i * headDim, recon.data() + i * headDim, 1,
                                                      headDim);
    }
  }
}

void DepthErrorAccumulator::merge(const DepthErrorAccumulator& other) {
  if (other.m_heads != m_heads || other.m_depth != m_depth) throwInternal("depth error", "shape mismatch");
  for (size_t i = 0; i < m_acc.size(); ++i) m_acc[i].merge(other.m_acc[i]);
}

ErrorSums DepthErrorAccumulator::sums(int depth) const {
  ErrorSums total;
  for (int h = 0; h < m_heads; ++h) total.merge(sums(h, depth));
  return total;
}

ErrorSums DepthErrorAccumulator::sums(int head, int depth) const {
  if (head < 0 || head >= m_heads || depth < 1 || depth > m_depth)
    throwInternal("depth error", "index out of range");
  return m_acc[static_cast<size_t>(head) * m_depth + (depth - 1)].sums();
}

}  // namespace kvq
