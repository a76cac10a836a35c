// Host implementations of the training steps shared by every backend: they only
// call the backend's own nearest() and accumulate(), so a backend that does not
// override them is still exact and deterministic (docs/metrics.md §4).
#include "kvq/rvq/backend.h"

#include <algorithm>
#include <vector>

namespace kvq {

void Backend::emaStep(const float* x, int64_t n, float* codebook, int C, int g, double decay, double eps,
                      double* emaCount, double* emaSum, int32_t* codes) {
  std::vector<int32_t> local;
  if (codes == nullptr) {
    local.resize(static_cast<size_t>(n));
    codes = local.data();
  }
  nearest(x, n, codebook, C, g, codes, nullptr);
  std::vector<double> counts(static_cast<size_t>(C), 0.0);
  std::vector<double> sums(static_cast<size_t>(C) * g, 0.0);
  accumulate(x, n, g, codes, C, counts.data(), sums.data());

  const size_t cg = static_cast<size_t>(C) * g;
  for (int i = 0; i < C; ++i)
    emaCount[i] = decay * emaCount[i] + (1.0 - decay) * counts[static_cast<size_t>(i)];
  for (size_t j = 0; j < cg; ++j) emaSum[j] = decay * emaSum[j] + (1.0 - decay) * sums[j];
  double total = 0.0;
  for (int i = 0; i < C; ++i) total += emaCount[i];
  if (!(total > 0.0)) return;  // nothing assigned yet: the smoothed counts would all be 0
  // Laplace smoothing: N~_i = (N_i + eps) / (sum N + C eps) * sum N;  C[i] = m_i / N~_i.
  const double denom = total + C * eps;
  for (int i = 0; i < C; ++i) {
    const double smoothed = (emaCount[i] + eps) / denom * total;
    for (int d = 0; d < g; ++d) {
      const size_t j = static_cast<size_t>(i) * g + d;
      codebook[j] = static_cast<float>(emaSum[j] / smoothed);
    }
  }
}

double Backend::kmeansStep(const float* x, int64_t n, float* codebook, int C, int g, double* counts) {
  std::vector<int32_t> codes(static_cast<size_t>(n));
  std::vector<float> dist(static_cast<size_t>(n));
  nearest(x, n, codebook, C, g, codes.data(), dist.data());
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += dist[static_cast<size_t>(i)];
  std::vector<double> cnt(static_cast<size_t>(C), 0.0);
  std::vector<double> sums(static_cast<size_t>(C) * g, 0.0);
  accumulate(x, n, g, codes.data(), C, cnt.data(), sums.data());
  for (int i = 0; i < C; ++i) {
    const double c = cnt[static_cast<size_t>(i)];
    if (c == 0.0) continue;  // an empty cluster keeps its centre (scipy kmeans2, missing="warn")
    for (int d = 0; d < g; ++d) {
      const size_t j = static_cast<size_t>(i) * g + d;
      codebook[j] = static_cast<float>(sums[j] / c);
    }
  }
  if (counts != nullptr) std::copy(cnt.begin(), cnt.end(), counts);
  return total;
}

}  // namespace kvq
