// StudyController — trains studies on the job queue and caches their results.
//
// Cache key: the dump, the layers and every setting except the depth: one training
// at depth K answers every depth <= K, so moving the depth slider only re-reads a
// cached result. A newer train request replaces a queued one and cancels a
// running one (job tag "train"); a failed or cancelled training leaves the
// cache and the shown result as they were.
//
// After every full training the BackgroundTrainer trains the neighbouring codebook
// sizes at full depth into the same cache (background_trainer.h). A progressive
// training (auto-train) first runs a quick preview of the settings (tag "preview"),
// then the full recipe (tag "train"); both are replaced by a newer request.
// Throughput (multiply-adds per second, work_estimate.h) is measured on the backend
// at start and from every full training; estimateSeconds() uses it.
#pragma once

#include <QHash>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QStringList>

#include <memory>

#include "background_trainer.h"
#include "dump_session.h"
#include "kvq/isolate/open_file.h"
#include "kvq/rvq/backend.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class JobQueue;

using StudyPtr = std::shared_ptr<const kvq::StudyResult>;

class StudyController : public QObject {
  Q_OBJECT

 public:
  static constexpr int kCacheEntries = 16;
  // Studies with large codebooks are big (K·C·g floats + K·C histogram counts per
  // layer and kind): the cache also stays under this many bytes (the newest study
  // is always kept).
  static constexpr size_t kCacheBytes = size_t{1} << 30;
  static size_t approximateBytes(const kvq::StudyResult& study);

  // Full: the settings as they are. Progressive: a quick preview first when it is
  // much cheaper (previewReady), then the full recipe (resultReady).
  enum class Mode { Full, Progressive };

  StudyController(JobQueue* jobs, QObject* parent = nullptr);
  ~StudyController() override;

  void setSession(SessionPtr session);
  QString backendName() const;
  // Switches the backend ("auto", "cpu", "cuda"); created on the worker thread
  // (device start-up takes a moment). backendChanged or backendFailed follows; on
  // failure the previous backend stays.
  void setBackendChoice(const QString& choice);

  // Attention metrics (on by default): a training of layers that store queries also
  // measures attention at every depth 1..K (docs/metrics.md, "Attention").
  void setAttentionEnabled(bool enabled) { m_attention = enabled; }
  bool attentionEnabled() const { return m_attention; }
  // Whether a training of these layers would measure attention.
  bool measuresAttention(const QList<int>& layers) const;
  // Attention of every depth 1..depth (so the rate–distortion chart can plot it), or off.
  static kvq::AttentionOptions attentionOptions(bool enabled, int depth);

  // Trains config on layers (all present when empty) unless a cached study answers it
  // or the same training is already under way. Returns false when the cache answered
  // (resultReady is emitted at once).
  bool train(const kvq::RvqConfig& config, const QList<int>& layers, Mode mode = Mode::Full);

  // Evaluates the codebooks of a file on the open dump (held-out error and, with
  // queries, attention), on the job queue: evaluationReady or evaluationFailed
  // follows. The file is opened under policy (validated in a limited child unless the
  // user trusts files): a file that crashes the HDF5 library fails with that message.
  // Codebooks that do not fit the dump (head_dim, layers, group size) fail with a
  // message naming the mismatch; earlier results stay.
  void evaluate(const QString& codebooksPath, const kvq::OpenPolicy& policy);
  // A cached study trained with config (any depth >= config.depth), or nullptr.
  StudyPtr lookup(const kvq::RvqConfig& config, const QList<int>& layers) const;
  // A cached study with every setting of config but a smaller trained depth, or nullptr.
  StudyPtr lookupShallower(const kvq::RvqConfig& config, const QList<int>& layers) const;
  // The preview of the newest progressive training of config, or nullptr.
  StudyPtr lookupPreview(const kvq::RvqConfig& config, const QList<int>& layers) const;
  int trainingsCompleted() const { return m_trainings; }  // full foreground trainings
  int trainRequests() const { return m_trainRequests; }   // foreground jobs submitted (previews too)
  bool isTraining() const;
  // True while a foreground training of exactly config on layers is queued or running.
  bool isTrainingFor(const kvq::RvqConfig& config, const QList<int>& layers) const;

  BackgroundTrainer* background() const { return m_background; }
  // Turns background training on (planned from the newest full training) or off.
  void setBackgroundEnabled(bool on);

  // Seconds the backend would take to train and evaluate config on layers of the open
  // dump, from the measured throughput; infinity until it is measured or without a dump.
  double estimateSeconds(const kvq::RvqConfig& config, const QList<int>& layers) const;
  double throughput() const { return m_throughput; }  // multiply-adds per second, 0 unknown

  static QString cacheKey(const QString& dump, const kvq::RvqConfig& config, const QList<int>& layers,
                          bool attention = false);

 signals:
  void resultReady(const kvq::ui::StudyPtr& study);
  void previewReady(const kvq::ui::StudyPtr& study);
  void backgroundResult(const kvq::ui::StudyPtr& study);
  void trainingFailed(const QString& message);
  void evaluationReady(const kvq::ui::StudyPtr& study, const QString& codebooksPath);
  void evaluationFailed(const QString& codebooksPath, const QString& message);
  void backendChanged(const QString& name);
  void backendFailed(const QString& message);
  void throughputChanged(double multiplyAddsPerSecond);

 private:
  // The cache key of config on layers of the open dump, attention included when measured.
  QString keyFor(const kvq::RvqConfig& config, const QList<int>& layers) const;
  void store(const QString& key, StudyPtr study);
  void submit(const QString& tag, const kvq::RvqConfig& config, const QList<int>& layers, bool preview);
  void onFullResult(const StudyPtr& study, const QList<int>& layers);
  void planBackground();
  // Multiply-adds of a training of `layers` (all when empty), with the attention
  // measurement a full training adds on a dump with queries (kvq/study/work_estimate.h).
  double studyWork(const kvq::RvqConfig& config, const QList<int>& layers, bool attention) const;

  QPointer<JobQueue> m_jobs;  // may die first when both are children of one window
  SessionPtr m_session;
  std::shared_ptr<kvq::Backend> m_backend;  // used on the worker thread only
  QString m_backendName;
  QHash<QString, StudyPtr> m_cache;
  QStringList m_recent;  // keys, most recent last (eviction order)
  int m_trainings = 0;
  int m_trainRequests = 0;
  QString m_pendingKey;  // key of the newest foreground training request
  int m_pendingDepth = 0;
  StudyPtr m_preview;    // preview of the newest progressive request
  QString m_previewKey;  // the full key it previews
  StudyPtr m_lastFull;   // the newest full training, and its layers: the background plan's base
  QList<int> m_lastLayers;
  double m_throughput = 0;
  bool m_throughputFromTraining = false;  // a real training measured it (preferred)
  BackgroundTrainer* m_background;
  bool m_attention = true;
};

}  // namespace kvq::ui
