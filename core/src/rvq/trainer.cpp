// Training of a residual quantizer, stage by stage (docs/metrics.md §4):
//   1. k-means on the sample's residuals left by stages < k (init + Lloyd iterations);
//   2. EMA refinement on random mini-batches of those residuals, the EMA state
//      starting, as in the reference code, at count 1 and sum = centre per entry;
//   3. options beyond the paper: dead-entry reseeding during EMA, Lloyd iterations after;
//   4. the residuals are moved past the finished stage: greedily (the paper), or with
//      train_beam > 1 by beam search of the sample through every stage so far (the
//      best path's residual; FAISS's ResidualQuantizer trains with its beam too).
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

// Training data: at most config.trainSample distinct vectors of x, kept in their
// original order. x: [n, g] row-major; returns [ns, g].
std::vector<float> sampleTrainingVectors(const float* x, int64_t n, int g, const RvqConfig& config) {
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
  return res;
}

// Trains the stages one after the other on the residuals of the sample. Each stage
// is the sequence of named steps of train(); the scratch buffers and the statistics
// live here so the steps need no long parameter lists.
class StageTrainer {
 public:
  StageTrainer(std::vector<float> sample, int g, const RvqConfig& config, Backend& backend,
               Progress& progress, TrainStats& stats)
      : m_res(std::move(sample)),
        m_source(config.trainBeam > 1 ? m_res : std::vector<float>()),
        m_ns(static_cast<int64_t>(m_res.size()) / g),
        m_g(g),
        m_c(config.codebookSize),
        m_k(config.depth),
        m_config(config),
        m_backend(backend),
        m_progress(progress),
        m_stats(stats),
        m_batch(std::min<int64_t>(config.batchSize, m_ns)),
        m_codes(static_cast<size_t>(m_ns)),
        m_dist(static_cast<size_t>(m_ns)),
        m_batchData(static_cast<size_t>(m_batch) * g),
        m_emaCount(static_cast<size_t>(m_c)),
        m_emaSum(static_cast<size_t>(m_c) * g),
        m_totalEnergy(energyOf(m_res.data(), m_ns, g)) {}

  // Stage k of books: k-means init, EMA refinement, Lloyd, then the residuals move on.
  void train(int k, Codebooks& books) {
    float* cb = books.stage(k);
    initWithKmeans(k, cb);
    startEmaState(k, cb);
    refineWithEma(k, cb);
    refineWithLloyd(k, cb);
    if (m_config.trainBeam > 1) {
      beamResiduals(k, books);
    } else {
      advanceResiduals(k, cb);
    }
  }

 private:
  double relative(double e) const { return m_totalEnergy > 0.0 ? e / m_totalEnergy : 0.0; }
  size_t at(int k) const { return static_cast<size_t>(k); }

  // 1. k-means on the residuals left by stages < k.
  void initWithKmeans(int k, float* cb) {
    std::mt19937_64 initRng = detail::seededEngine(m_config.seed, static_cast<uint64_t>(k) + 1, kInitPurpose);
    if (m_config.init == KMeansInit::Progressive) {
      // kmeansIterations per dimension step (FAISS: 10 steps of 10 iterations).
      m_stats.reseeded[at(k)] += detail::progressiveKmeans(
          m_res.data(), m_ns, m_g, m_c, m_config.kmeansIterations, kProgressiveSteps, initRng, m_backend, cb);
      for (int it = 0; it < m_config.kmeansIterations; ++it) m_progress.step(k, m_k, "k-means");
      return;
    }
    detail::initCentres(m_res.data(), m_ns, m_g, m_c, m_config.init, initRng, cb);
    std::vector<double> kmCounts(static_cast<size_t>(m_c));
    for (int it = 0; it < m_config.kmeansIterations; ++it) {
      m_backend.kmeansStep(m_res.data(), m_ns, cb, m_c, m_g, kmCounts.data());
      // Beyond the paper (deadThreshold > 0): empty clusters take half of a large one
      // instead of keeping their centre.
      if (m_config.deadThreshold > 0.0 && it + 1 < m_config.kmeansIterations) {
        m_stats.reseeded[at(k)] += detail::splitEmptyClusters(cb, kmCounts.data(), m_c, m_g, initRng);
      }
      m_progress.step(k, m_k, "k-means");
    }
  }

  // The stage's error after init, and the EMA state as in the reference
  // implementation: count 1 and sum = centre for every entry, so an entry that no
  // batch vector picks stays at its k-means centre (its count and sum decay
  // together) instead of collapsing to zero.
  void startEmaState(int k, const float* cb) {
    m_backend.nearest(m_res.data(), m_ns, cb, m_c, m_g, m_codes.data(), m_dist.data());
    double initError = 0.0;
    for (int64_t i = 0; i < m_ns; ++i) initError += m_dist[static_cast<size_t>(i)];
    m_stats.stageErrorAfterInit[at(k)] = relative(initError);
    std::fill(m_emaCount.begin(), m_emaCount.end(), 1.0);
    for (size_t j = 0; j < m_emaSum.size(); ++j) m_emaSum[j] = static_cast<double>(cb[j]);
    m_progress.step(k, m_k, "k-means assignment");
  }

  // 2. EMA on mini-batches: consecutive slices of a shuffled order of the sample,
  //    reshuffled whenever it is used up.
  void refineWithEma(int k, float* cb) {
    std::mt19937_64 batchRng =
        detail::seededEngine(m_config.seed, static_cast<uint64_t>(k) + 1, kBatchPurpose);
    std::mt19937_64 reseedRng =
        detail::seededEngine(m_config.seed, static_cast<uint64_t>(k) + 1, kReseedPurpose);
    std::vector<int64_t> order;
    int64_t pos = m_ns;  // forces a shuffle before the first batch
    for (int step = 0; step < m_config.emaSteps; ++step) {
      if (pos + m_batch > m_ns) {
        order = detail::distinctIndices(batchRng, m_ns, m_ns);
        pos = 0;
      }
      for (int64_t b = 0; b < m_batch; ++b) {
        const int64_t src = order[static_cast<size_t>(pos + b)];
        std::copy(m_res.begin() + src * m_g, m_res.begin() + (src + 1) * m_g, m_batchData.begin() + b * m_g);
      }
      pos += m_batch;
      m_backend.emaStep(m_batchData.data(), m_batch, cb, m_c, m_g, m_config.emaDecay, m_config.emaEpsilon,
                        m_emaCount.data(), m_emaSum.data(), nullptr);
      if (m_config.deadThreshold > 0.0) reseedDeadEntries(k, cb, reseedRng);
      m_progress.step(k, m_k, "EMA");
    }
  }

  // 3. (beyond the paper) Dead entries: EMA count below deadThreshold x the mean
  // count. They restart at a random vector of the current batch with the mean count,
  // so they compete at once.
  void reseedDeadEntries(int k, float* cb, std::mt19937_64& reseedRng) {
    double total = 0.0;
    for (double c : m_emaCount) total += c;
    const double mean = total / m_c;
    for (int i = 0; i < m_c; ++i) {
      if (!(m_emaCount[static_cast<size_t>(i)] < m_config.deadThreshold * mean)) continue;
      const int64_t src =
          static_cast<int64_t>(detail::uniformIndex(reseedRng, static_cast<uint64_t>(m_batch)));
      const float* v = m_batchData.data() + src * m_g;
      std::copy(v, v + m_g, cb + static_cast<int64_t>(i) * m_g);
      m_emaCount[static_cast<size_t>(i)] = mean;
      for (int d = 0; d < m_g; ++d) m_emaSum[static_cast<size_t>(i) * m_g + d] = mean * v[d];
      ++m_stats.reseeded[at(k)];
    }
  }

  // 3. (beyond the paper) Lloyd refinement on the whole sample.
  void refineWithLloyd(int k, float* cb) {
    for (int it = 0; it < m_config.lloydIterations; ++it) {
      m_backend.kmeansStep(m_res.data(), m_ns, cb, m_c, m_g, nullptr);
      m_progress.step(k, m_k, "Lloyd");
    }
  }

  // 4. Residuals past this stage; the stage's error after training.
  void advanceResiduals(int k, const float* cb) {
    m_backend.nearest(m_res.data(), m_ns, cb, m_c, m_g, m_codes.data(), nullptr);
    double err = 0.0;
    for (int64_t i = 0; i < m_ns; ++i) {
      float* r = m_res.data() + i * m_g;
      const float* c = cb + static_cast<int64_t>(m_codes[static_cast<size_t>(i)]) * m_g;
      for (int d = 0; d < m_g; ++d) {
        r[d] -= c[d];
        err += static_cast<double>(r[d]) * static_cast<double>(r[d]);
      }
    }
    m_stats.stageErrorAfterEma[at(k)] = relative(err);
    m_progress.step(k, m_k, "residuals");
  }

  // 4. (beyond the paper, train_beam > 1) Residuals of the sample after beam search
  // through stages 0..k, from the sample itself: the best path after k + 1 stages need
  // not extend the best after k, so the residuals are searched anew at every stage.
  void beamResiduals(int k, const Codebooks& books) {
    Codebooks trained(k + 1, m_c, m_g);
    std::copy(books.data.begin(), books.data.begin() + static_cast<int64_t>(trained.data.size()),
              trained.data.begin());
    std::vector<int32_t> codes(static_cast<size_t>(m_ns) * static_cast<size_t>(k + 1));
    m_backend.encodeBeam(m_source.data(), m_ns, trained, m_config.trainBeam, codes.data(), nullptr,
                         m_res.data());
    m_stats.stageErrorAfterEma[at(k)] = relative(energyOf(m_res.data(), m_ns, m_g));
    m_progress.step(k, m_k, "beam residuals");
  }

  std::vector<float> m_res;     // [ns, g] residuals of the sample
  std::vector<float> m_source;  // [ns, g] the sample itself (train_beam > 1 only)
  int64_t m_ns;
  int m_g, m_c, m_k;
  const RvqConfig& m_config;
  Backend& m_backend;
  Progress& m_progress;
  TrainStats& m_stats;
  int64_t m_batch;
  std::vector<int32_t> m_codes;
  std::vector<float> m_dist;
  std::vector<float> m_batchData;  // [batch, g]
  std::vector<double> m_emaCount;  // [C]
  std::vector<double> m_emaSum;    // [C, g]
  double m_totalEnergy;
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
  std::vector<float> sample = sampleTrainingVectors(x, n, g, config);
  const int64_t ns = static_cast<int64_t>(sample.size()) / g;
  if (ns < C) {
    throwBadInput("", "codebook_size",
                  "the training data has " + std::to_string(ns) + " group vectors, fewer than the " +
                      std::to_string(C) + " entries of a codebook");
  }

  TrainStats local;
  TrainStats& st = stats != nullptr ? *stats : local;
  st.stageErrorAfterInit.assign(static_cast<size_t>(K), 0.0);
  st.stageErrorAfterEma.assign(static_cast<size_t>(K), 0.0);
  st.reseeded.assign(static_cast<size_t>(K), 0);
  // int64: each count may be near INT_MAX, and their int sum would overflow.
  Progress progress(control, K,
                    int64_t{config.kmeansIterations} + config.emaSteps + config.lloydIterations + 2);

  Codebooks books(K, C, g);
  StageTrainer trainer(std::move(sample), g, config, backend, progress, st);
  for (int k = 0; k < K; ++k) trainer.train(k, books);
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return books;
}

}  // namespace kvq
