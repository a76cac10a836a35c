// Training of a residual quantizer, stage by stage (docs/metrics.md §4):
//   1. k-means on the sample's residuals left by stages < k (init + Lloyd iterations);
//   2. EMA refinement on random mini-batches of those residuals, the EMA state
//      starting, as in the reference code, at count 1 and sum = centre per entry;
//   3. options beyond the paper: dead-entry reseeding during EMA, Lloyd iterations after;
//   4. the residuals are moved past the finished stage.
#include "kvq/rvq/trainer.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "rvq/kmeans.h"

namespace kvq {
namespace {

// Purposes of the seeded engines (kmeans.h).
constexpr uint64_t kSamplePurpose = 1;
constexpr uint64_t kInitPurpose = 2;
constexpr uint64_t kBatchPurpose = 3;
constexpr uint64_t kReseedPurpose = 4;
constexpr int kProgressiveSteps = 10;

double energyOf(const float* x, int64_t n, int g) {
  double e = 0.0;
  for (int64_t i = 0; i < n * g; ++i) e += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return e;
}

class Progress {
 public:
  Progress(const TaskControl* control, int stages, int64_t unitsPerStage)
      : m_control(control), m_total(static_cast<double>(stages) * static_cast<double>(unitsPerStage)) {}
  void step(int stage, int depth, const char* what) {
    ++m_done;
    checkCancel(m_control);
    reportProgress(m_control, m_total > 0 ? m_done / m_total : 1.0,
                   "stage " + std::to_string(stage + 1) + "/" + std::to_string(depth) + ": " + what);
  }

 private:
  const TaskControl* m_control;
  double m_total;
  double m_done = 0;
};

}  // namespace

Codebooks trainRvq(const float* x, int64_t n, int g, const RvqConfig& config, Backend& backend,
                   const TaskControl* control, TrainStats* stats) {
  const auto start = std::chrono::steady_clock::now();
  validateConfig(config, g);  // g is the group size of the vectors given
  if (config.groupSize != g) {
    throwBadInput(
        "", "group_size",
        "vectors have " + std::to_string(g) + " channels, config says " + std::to_string(config.groupSize));
  }
  const int C = config.codebookSize;
  const int K = config.depth;
  checkCancel(control);

  // Training sample: at most trainSample distinct vectors, kept in their original order.
  std::vector<float> res;
  if (n > config.trainSample) {
    std::mt19937_64 rng = detail::seededEngine(config.seed, 0, kSamplePurpose);
    std::vector<int64_t> pick = detail::distinctIndices(rng, n, config.trainSample);
    std::sort(pick.begin(), pick.end());
    res.resize(pick.size() * static_cast<size_t>(g));
    for (size_t i = 0; i < pick.size(); ++i) {
      std::copy(x + pick[i] * g, x + (pick[i] + 1) * g, res.begin() + static_cast<int64_t>(i) * g);
    }
  } else {
    res.assign(x, x + n * g);
  }
  const int64_t ns = static_cast<int64_t>(res.size()) / g;
  if (ns < C) {
    throwBadInput("", "codebook_size",
                  "the training data has " + std::to_string(ns) + " group vectors, fewer than the " +
                      std::to_string(C) + " entries of a codebook");
  }
  const double totalEnergy = energyOf(res.data(), ns, g);
  auto relative = [&](double e) { return totalEnergy > 0.0 ? e / totalEnergy : 0.0; };

  TrainStats local;
  TrainStats& st = stats != nullptr ? *stats : local;
  st.stageErrorAfterInit.assign(static_cast<size_t>(K), 0.0);
  st.stageErrorAfterEma.assign(static_cast<size_t>(K), 0.0);
  st.reseeded.assign(static_cast<size_t>(K), 0);

  Codebooks books(K, C, g);
  const int64_t batch = std::min<int64_t>(config.batchSize, ns);
  std::vector<int32_t> codes(static_cast<size_t>(ns));
  std::vector<float> dist(static_cast<size_t>(ns));
  std::vector<float> batchData(static_cast<size_t>(batch) * g);
  std::vector<double> emaCount(static_cast<size_t>(C));
  std::vector<double> emaSum(static_cast<size_t>(C) * g);
  // int64: each count may be near INT_MAX, and their int sum would overflow.
  Progress progress(control, K,
                    int64_t{config.kmeansIterations} + config.emaSteps + config.lloydIterations + 2);

  for (int k = 0; k < K; ++k) {
    float* cb = books.stage(k);

    // 1. k-means on the residuals.
    std::mt19937_64 initRng = detail::seededEngine(config.seed, static_cast<uint64_t>(k) + 1, kInitPurpose);
    std::vector<double> kmCounts(static_cast<size_t>(C));
    if (config.init == KMeansInit::Progressive) {
      // kmeansIterations per dimension step (FAISS: 10 steps of 10 iterations).
      st.reseeded[static_cast<size_t>(k)] += detail::progressiveKmeans(
          res.data(), ns, g, C, config.kmeansIterations, kProgressiveSteps, initRng, backend, cb);
      for (int it = 0; it < config.kmeansIterations; ++it) progress.step(k, K, "k-means");
    } else {
      detail::initCentres(res.data(), ns, g, C, config.init, initRng, cb);
    }
    for (int it = 0; it < (config.init == KMeansInit::Progressive ? 0 : config.kmeansIterations); ++it) {
      backend.kmeansStep(res.data(), ns, cb, C, g, kmCounts.data());
      // Beyond the paper (deadThreshold > 0): empty clusters take half of a large one
      // instead of keeping their centre.
      if (config.deadThreshold > 0.0 && it + 1 < config.kmeansIterations) {
        st.reseeded[static_cast<size_t>(k)] += detail::splitEmptyClusters(cb, kmCounts.data(), C, g, initRng);
      }
      progress.step(k, K, "k-means");
    }
    // Assignment to the final centres: the stage's error after init, and the EMA state.
    backend.nearest(res.data(), ns, cb, C, g, codes.data(), dist.data());
    double initError = 0.0;
    for (int64_t i = 0; i < ns; ++i) initError += dist[static_cast<size_t>(i)];
    st.stageErrorAfterInit[static_cast<size_t>(k)] = relative(initError);
    // EMA state as in the reference implementation: count 1 and sum = centre for every
    // entry, so an entry that no batch vector picks stays at its k-means centre (its count
    // and sum decay together) instead of collapsing to zero.
    std::fill(emaCount.begin(), emaCount.end(), 1.0);
    for (size_t j = 0; j < emaSum.size(); ++j) emaSum[j] = static_cast<double>(cb[j]);
    progress.step(k, K, "k-means assignment");

    // 2. EMA on mini-batches: consecutive slices of a shuffled order of the sample,
    //    reshuffled whenever it is used up.
    std::mt19937_64 batchRng = detail::seededEngine(config.seed, static_cast<uint64_t>(k) + 1, kBatchPurpose);
    std::mt19937_64 reseedRng =
        detail::seededEngine(config.seed, static_cast<uint64_t>(k) + 1, kReseedPurpose);
    std::vector<int64_t> order;
    int64_t pos = ns;  // forces a shuffle before the first batch
    for (int step = 0; step < config.emaSteps; ++step) {
      if (pos + batch > ns) {
        order = detail::distinctIndices(batchRng, ns, ns);
        pos = 0;
      }
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t src = order[static_cast<size_t>(pos + b)];
        std::copy(res.begin() + src * g, res.begin() + (src + 1) * g, batchData.begin() + b * g);
      }
      pos += batch;
      backend.emaStep(batchData.data(), batch, cb, C, g, config.emaDecay, config.emaEpsilon, emaCount.data(),
                      emaSum.data(), nullptr);
      if (config.deadThreshold > 0.0) {
        // Dead entries: EMA count below deadThreshold x the mean count. They restart at
        // a random vector of this batch with the mean count, so they compete at once.
        double total = 0.0;
        for (double c : emaCount) total += c;
        const double mean = total / C;
        for (int i = 0; i < C; ++i) {
          if (!(emaCount[static_cast<size_t>(i)] < config.deadThreshold * mean)) continue;
          const int64_t src =
              static_cast<int64_t>(detail::uniformIndex(reseedRng, static_cast<uint64_t>(batch)));
          const float* v = batchData.data() + src * g;
          std::copy(v, v + g, cb + static_cast<int64_t>(i) * g);
          emaCount[static_cast<size_t>(i)] = mean;
          for (int d = 0; d < g; ++d) emaSum[static_cast<size_t>(i) * g + d] = mean * v[d];
          ++st.reseeded[static_cast<size_t>(k)];
        }
      }
      progress.step(k, K, "EMA");
    }

    // 3. Lloyd refinement on the whole sample.
    for (int it = 0; it < config.lloydIterations; ++it) {
      backend.kmeansStep(res.data(), ns, cb, C, g, nullptr);
      progress.step(k, K, "Lloyd");
    }

    // 4. Residuals past this stage.
    backend.nearest(res.data(), ns, cb, C, g, codes.data(), nullptr);
    double err = 0.0;
    for (int64_t i = 0; i < ns; ++i) {
      float* r = res.data() + i * g;
      const float* c = cb + static_cast<int64_t>(codes[static_cast<size_t>(i)]) * g;
      for (int d = 0; d < g; ++d) {
        r[d] -= c[d];
        err += static_cast<double>(r[d]) * static_cast<double>(r[d]);
      }
    }
    st.stageErrorAfterEma[static_cast<size_t>(k)] = relative(err);
    progress.step(k, K, "residuals");
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return books;
}

}  // namespace kvq
