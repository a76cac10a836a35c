#include "kvq/rvq/refine.h"

#include <string>

#include "kvq/base/error.h"
#include "kvq/rvq/encoder.h"

namespace kvq {
namespace {

double sumOf(const std::vector<double>& err) {
  double total = 0;
  for (double e : err) total += e;  // in order: the same sum for any thread count
  return total;
}

// err: [n] out, the squared error of each vector's codes; returns their sum.
double vectorErrors(const float* x, int64_t n, const Codebooks& books, const int32_t* codes, double* err) {
  const int K = books.depth;
  const int g = books.dim;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    double e = 0;
    for (int d = 0; d < g; ++d) {
      float r = x[i * g + d];
      for (int k = 0; k < K; ++k) r -= books.entry(k, codes[i * K + k])[d];
      e += static_cast<double>(r) * r;
    }
    err[i] = e;
  }
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += err[i];
  return total;
}

// Re-encodes every vector; a vector takes its new codes only when they lower its error.
int64_t reencode(const float* x, int64_t n, const Codebooks& books, int beamWidth, Backend& backend,
                 std::vector<int32_t>& codes, std::vector<double>& err) {
  const int K = books.depth;
  std::vector<int32_t> fresh(codes.size());
  if (beamWidth > 1) {
    backend.encodeBeam(x, n, books, beamWidth, fresh.data(), nullptr, nullptr);
  } else {
    backend.encodeGreedy(x, n, books, fresh.data(), nullptr, nullptr);
  }
  std::vector<double> freshErr(static_cast<size_t>(n));
  vectorErrors(x, n, books, fresh.data(), freshErr.data());
  int64_t changed = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!(freshErr[static_cast<size_t>(i)] < err[static_cast<size_t>(i)])) continue;
    std::copy(fresh.begin() + i * K, fresh.begin() + (i + 1) * K, codes.begin() + i * K);
    err[static_cast<size_t>(i)] = freshErr[static_cast<size_t>(i)];
    ++changed;
  }
  return changed;
}

// Least-squares update of stage k for fixed codes. Returns whether it was kept.
bool updateStage(const float* x, int64_t n, Codebooks& books, int k, const std::vector<int32_t>& codes,
                 std::vector<double>& err, double& objective) {
  const int K = books.depth;
  const int C = books.size;
  const int g = books.dim;
  std::vector<double> count(static_cast<size_t>(C), 0.0);
  std::vector<double> sum(static_cast<size_t>(C) * g, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = codes[static_cast<size_t>(i * K + k)];
    count[static_cast<size_t>(c)] += 1;
    for (int d = 0; d < g; ++d) {
      // What the other stages leave for this vector: x - sum_{j != k} C_j[c_j].
      double t = x[i * g + d];
      for (int j = 0; j < K; ++j) {
        if (j != k) t -= books.entry(j, codes[static_cast<size_t>(i * K + j)])[d];
      }
      sum[static_cast<size_t>(c) * g + d] += t;
    }
  }
  const std::vector<float> before(books.stage(k), books.stage(k) + static_cast<size_t>(C) * g);
  for (int c = 0; c < C; ++c) {
    if (count[static_cast<size_t>(c)] == 0) continue;
    for (int d = 0; d < g; ++d) {
      books.stage(k)[static_cast<size_t>(c) * g + d] =
          static_cast<float>(sum[static_cast<size_t>(c) * g + d] / count[static_cast<size_t>(c)]);
    }
  }
  std::vector<double> newErr(static_cast<size_t>(n));
  const double updated = vectorErrors(x, n, books, codes.data(), newErr.data());
  if (updated > objective) {
    std::copy(before.begin(), before.end(), books.stage(k));
    return false;
  }
  objective = updated;
  err.swap(newErr);
  return true;
}

}  // namespace

double rvqObjective(const float* x, int64_t n, const Codebooks& books, const int32_t* codes) {
  std::vector<double> err(static_cast<size_t>(n));
  return vectorErrors(x, n, books, codes, err.data());
}

RefineStats refineRvq(const float* x, int64_t n, Codebooks& books, int rounds, int beamWidth,
                      Backend& backend, const TaskControl* control) {
  if (rounds < 0) throwBadInput("", "refine_rounds", "must be at least 0");
  if (beamWidth < 1) throwBadInput("", "beam_width", "must be at least 1");
  const int K = books.depth;
  std::vector<int32_t> codes(static_cast<size_t>(n) * K);
  backend.encodeGreedy(x, n, books, codes.data(), nullptr, nullptr);
  std::vector<double> err(static_cast<size_t>(n));
  RefineStats stats;
  double objective = vectorErrors(x, n, books, codes.data(), err.data());
  stats.objective.push_back(objective);
  for (int r = 0; r < rounds; ++r) {
    checkCancel(control);
    if (r > 0 || beamWidth > 1) {
      stats.codesChanged += reencode(x, n, books, beamWidth, backend, codes, err);
      objective = sumOf(err);
    }
    for (int k = 0; k < K; ++k) {
      checkCancel(control);
      updateStage(x, n, books, k, codes, err, objective);
      reportProgress(control, (r + (k + 1.0) / K) / rounds,
                     "refinement round " + std::to_string(r + 1) + "/" + std::to_string(rounds));
    }
    stats.objective.push_back(objective);
  }
  return stats;
}

}  // namespace kvq
