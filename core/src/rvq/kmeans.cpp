#include "rvq/kmeans.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

namespace kvq::detail {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::mt19937_64 seededEngine(uint64_t seed, uint64_t stage, uint64_t purpose) {
  uint64_t state = seed;
  uint64_t a = splitmix64(state);
  state ^= stage * 0xD1B54A32D192ED03ull;
  a ^= splitmix64(state);
  state ^= purpose * 0x8CB92BA72F3D8DD7ull;
  a ^= splitmix64(state);
  return std::mt19937_64(a);
}

uint64_t uniformIndex(std::mt19937_64& rng, uint64_t n) {
  // Reject the top partial range so every residue is equally likely.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t v = rng();
  while (v >= limit) v = rng();
  return v % n;
}

double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

std::vector<int64_t> distinctIndices(std::mt19937_64& rng, int64_t n, int64_t count) {
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t j = i + static_cast<int64_t>(uniformIndex(rng, static_cast<uint64_t>(n - i)));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  perm.resize(static_cast<size_t>(count));
  return perm;
}

void initCentres(const float* x, int64_t n, int g, int C, KMeansInit init, std::mt19937_64& rng,
                 float* centres) {
  if (init == KMeansInit::RandomPoints) {
    const std::vector<int64_t> pick = distinctIndices(rng, n, C);
    for (int i = 0; i < C; ++i) {
      std::copy(x + pick[static_cast<size_t>(i)] * g, x + (pick[static_cast<size_t>(i)] + 1) * g,
                centres + static_cast<int64_t>(i) * g);
    }
    return;
  }
  // k-means++. minDist[j]: squared distance of x_j to its nearest chosen centre.
  std::vector<double> minDist(static_cast<size_t>(n), std::numeric_limits<double>::infinity());
  int64_t chosen = static_cast<int64_t>(uniformIndex(rng, static_cast<uint64_t>(n)));
  for (int i = 0; i < C; ++i) {
    const float* c = x + chosen * g;
    std::copy(c, c + g, centres + static_cast<int64_t>(i) * g);
    if (i + 1 == C) break;
    const bool threaded = n * g >= (int64_t{1} << 22);  // the region runs once per centre
    // Per-vector updates (any thread count gives the same values) ...
#pragma omp parallel for schedule(static) if (threaded)
    for (int64_t j = 0; j < n; ++j) {
      const float* xj = x + j * g;
      // float, vectorised: this loop is the whole cost of k-means++ (n * C * g). The
      // reduction order is fixed by the compiled vector width, not by the threads.
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int d = 0; d < g; ++d) {
        const float t = xj[d] - c[d];
        s += t * t;
      }
      if (s < minDist[static_cast<size_t>(j)]) minDist[static_cast<size_t>(j)] = s;
    }
    // ... then a sequential sum and draw.
    double total = 0.0;
    for (int64_t j = 0; j < n; ++j) total += minDist[static_cast<size_t>(j)];
    if (!(total > 0.0)) {
      // Every vector coincides with a centre: continue with uniform draws.
      chosen = static_cast<int64_t>(uniformIndex(rng, static_cast<uint64_t>(n)));
      continue;
    }
    const double target = uniform01(rng) * total;
    double run = 0.0;
    chosen = n - 1;
    for (int64_t j = 0; j < n; ++j) {
      run += minDist[static_cast<size_t>(j)];
      if (run > target && minDist[static_cast<size_t>(j)] > 0.0) {
        chosen = j;
        break;
      }
    }
  }
}

int progressiveKmeans(const float* x, int64_t n, int g, int C, int iterations, int steps,
                      std::mt19937_64& rng, Backend& backend, float* centres) {
  using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  // Principal axes of x (covariance in double, accumulated in row order).
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(g);
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < g; ++d) mean[d] += x[i * g + d];
  }
  mean /= static_cast<double>(n);
  Mat cov = Mat::Zero(g, g);
  Eigen::VectorXd v(g);
  for (int64_t i = 0; i < n; ++i) {
    for (int d = 0; d < g; ++d) v[d] = x[i * g + d] - mean[d];
    cov.noalias() += v * v.transpose();
  }
  Eigen::SelfAdjointEigenSolver<Mat> eig(cov);
  // Axes by decreasing variance: column a of `axes` is the a-th principal axis.
  Mat axes(g, g);
  for (int a = 0; a < g; ++a) axes.col(a) = eig.eigenvectors().col(g - 1 - a);
  // y = (x - mean) * axes, in float.
  std::vector<float> y(static_cast<size_t>(n) * g);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int a = 0; a < g; ++a) {
      double s = 0.0;
      for (int d = 0; d < g; ++d) s += (x[i * g + d] - mean[d]) * axes(d, a);
      y[static_cast<size_t>(i * g + a)] = static_cast<float>(s);
    }
  }
  std::vector<float> cur, prev, ys;
  std::vector<double> counts(static_cast<size_t>(C));
  int prevDim = 0, split = 0;
  for (int s = 1; s <= steps; ++s) {
    const int dim =
        std::clamp(static_cast<int>(std::pow(static_cast<double>(g), static_cast<double>(s) / steps)),
                   std::max(1, prevDim), g);
    if (dim == prevDim) continue;
    ys.resize(static_cast<size_t>(n) * dim);
    for (int64_t i = 0; i < n; ++i) std::copy(&y[i * g], &y[i * g] + dim, &ys[i * dim]);
    cur.assign(static_cast<size_t>(C) * dim, 0.0f);
    if (prevDim == 0) {
      initCentres(ys.data(), n, dim, C, KMeansInit::RandomPoints, rng, cur.data());
    } else {
      for (int c = 0; c < C; ++c) std::copy(&prev[c * prevDim], &prev[c * prevDim] + prevDim, &cur[c * dim]);
    }
    for (int it = 0; it < iterations; ++it) {
      backend.kmeansStep(ys.data(), n, cur.data(), C, dim, counts.data());
      if (it + 1 < iterations) split += splitEmptyClusters(cur.data(), counts.data(), C, dim, rng);
    }
    prev.swap(cur);
    prevDim = dim;
  }
  // Back to x's coordinates: centre = mean + axes[:, :prevDim] * p.
  for (int c = 0; c < C; ++c) {
    for (int d = 0; d < g; ++d) {
      double s = mean[d];
      for (int a = 0; a < prevDim; ++a) s += axes(d, a) * prev[static_cast<size_t>(c) * prevDim + a];
      centres[static_cast<int64_t>(c) * g + d] = static_cast<float>(s);
    }
  }
  return split;
}

int splitEmptyClusters(float* centres, double* counts, int C, int g, std::mt19937_64& rng) {
  int split = 0;
  for (int i = 0; i < C; ++i) {
    if (counts[i] != 0.0) continue;
    double spare = 0.0;  // sum of (count - 1) over clusters that can give some away
    for (int j = 0; j < C; ++j) spare += std::max(0.0, counts[j] - 1.0);
    if (!(spare > 0.0)) break;
    const double target = uniform01(rng) * spare;
    double run = 0.0;
    int donor = -1;
    for (int j = 0; j < C; ++j) {
      const double w = std::max(0.0, counts[j] - 1.0);
      run += w;
      if (w > 0.0 && run > target) {
        donor = j;
        break;
      }
    }
    if (donor < 0) break;
    constexpr float kEps = 1.0f / 1024.0f;
    float* ci = centres + static_cast<int64_t>(i) * g;
    float* cj = centres + static_cast<int64_t>(donor) * g;
    for (int d = 0; d < g; ++d) {
      const float base = cj[d];
      ci[d] = d % 2 == 0 ? base * (1 + kEps) : base * (1 - kEps);
      cj[d] = d % 2 == 0 ? base * (1 - kEps) : base * (1 + kEps);
    }
    counts[i] = std::floor(counts[donor] / 2);
    counts[donor] -= counts[i];
    ++split;
  }
  return split;
}

}  // namespace kvq::detail
