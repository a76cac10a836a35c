// StudyController — trains studies on the job queue and caches their results.
//
// Cache key: the dump, the layers and every setting except the depth: one training
// at depth K answers every depth <= K, so moving the depth slider only re-reads a
// cached result. A newer train request replaces a queued one and cancels a
// running one (job tag "train"); a failed or cancelled training leaves the
// cache and the shown result as they were.
#pragma once

#include <QHash>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QStringList>

#include <memory>

#include "dump_session.h"
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

  StudyController(JobQueue* jobs, QObject* parent = nullptr);
  ~StudyController() override;

  void setSession(SessionPtr session);
  QString backendName() const;
  // Switches the backend ("auto", "cpu", "cuda"); created on the worker thread
  // (device start-up takes a moment). backendChanged or backendFailed follows; on
  // failure the previous backend stays.
  void setBackendChoice(const QString& choice);

  // Trains config on layers (all present when empty) unless a cached study answers it.
  // Returns false when the cache answered (resultReady is emitted at once).
  bool train(const kvq::RvqConfig& config, const QList<int>& layers);
  // A cached study trained with config (any depth >= config.depth), or nullptr.
  StudyPtr lookup(const kvq::RvqConfig& config, const QList<int>& layers) const;
  // A cached study with every setting of config but a smaller trained depth, or nullptr.
  StudyPtr lookupShallower(const kvq::RvqConfig& config, const QList<int>& layers) const;
  int trainingsCompleted() const { return m_trainings; }
  bool isTraining() const;

  static QString cacheKey(const QString& dump, const kvq::RvqConfig& config, const QList<int>& layers);

 signals:
  void resultReady(const kvq::ui::StudyPtr& study);
  void trainingFailed(const QString& message);
  void backendChanged(const QString& name);
  void backendFailed(const QString& message);

 private:
  void store(const QString& key, StudyPtr study);

  QPointer<JobQueue> m_jobs;  // may die first when both are children of one window
  SessionPtr m_session;
  std::shared_ptr<kvq::Backend> m_backend;  // used on the worker thread only
  QString m_backendName;
  QHash<QString, StudyPtr> m_cache;
  QStringList m_recent;  // keys, most recent last (eviction order)
  int m_trainings = 0;
};

}  // namespace kvq::ui
