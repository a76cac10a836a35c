// BackgroundTrainer — after a training, trains the codebook sizes around it at the
// depth slider's full depth, one size at a time, so that moving the codebook-size
// or depth slider finds a real result in the cache instead of a prompt to retrain.
//
// The plan (one per base: every setting but C and K, and the layers) is the trained
// size at full depth, then C/2, 2C, C/4, 4C, ... within the slider's range, as long
// as the sample has at least C vectors and the planned studies fit a memory budget.
// A size the user moves to is trained next (beyond the budget too), ahead of the
// size being trained, which starts again after it.
//
// The jobs run on a JobQueue of their own, each on a thread (and OpenMP team) of
// the lowest CPU priority (low_priority.h), with a backend of their own: the GUI's
// own jobs keep their speed and run at the same time. That needs an HDF5 built
// thread-safe (DumpReader::concurrentReadsSafe); otherwise the jobs go to the GUI's
// queue, one at a time. Everything here is cancellable: a new session, another backend, a
// base change or cancel() drops the plan and cancels the running size.
#pragma once

#include <QHash>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QString>

#include <functional>
#include <memory>

#include "dump_session.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class JobQueue;

class BackgroundTrainer : public QObject {
  Q_OBJECT

 public:
  using StudyPtr = std::shared_ptr<const kvq::StudyResult>;
  // Whether a trained study already answers config on layers (the controller's cache).
  using Answered = std::function<bool(const kvq::RvqConfig& config, const QList<int>& layers)>;

  // What the sliders offer: plans stay inside.
  struct Range {
    int minSize = 16;
    int maxSize = 16384;
    int maxDepth = 16;
  };
  enum class State { Answered, Training, Queued, Failed, NotPlanned };
  struct Status {
    State state = State::NotPlanned;
    double progress = 0;  // of the size being trained, 0..1
    QString message;      // why it failed (Failed)
  };

  // Planned studies (codebooks and usage counts) stay under this many bytes.
  static constexpr double kPlanBytes = 512.0 * 1024 * 1024;

  // fallback: the GUI's queue, used when reads cannot run on a second thread.
  BackgroundTrainer(JobQueue* fallback, Answered answered, QObject* parent = nullptr);
  ~BackgroundTrainer() override;

  void setRange(Range range) { m_range = range; }
  Range range() const { return m_range; }
  void setEnabled(bool enabled);
  // Attention metrics each background training measures (as the foreground one would, so
  // its results answer the same requests); off by default.
  void setAttention(const kvq::AttentionOptions& attention) { m_attention = attention; }
  bool isEnabled() const { return m_enabled; }
  void setSession(SessionPtr session);           // drops the plan
  void setBackendChoice(const QString& choice);  // drops the plan, measures the new backend

  // After a full training of config on layers; sampleVectors: the vectors one
  // quantizer trained on (after subsampling), which bounds the sizes.
  void plan(const kvq::RvqConfig& config, const QList<int>& layers, int64_t sampleVectors);
  // Asks for config's size next. True when it is answered or will be (it differs from
  // the plan's base only in C and K); false otherwise (no plan, other settings, or a
  // size that cannot be trained: status() says why).
  bool request(const kvq::RvqConfig& config, const QList<int>& layers);
  Status status(const kvq::RvqConfig& config, const QList<int>& layers) const;
  bool isIdle() const { return m_running == 0 && m_pending.isEmpty(); }
  int sizesTrained() const { return m_trained; }
  void cancel();  // drops the plan and cancels the running size

 signals:
  void studyReady(const kvq::ui::BackgroundTrainer::StudyPtr& study);  // one size, at full depth
  void statusChanged();  // a size started, progressed, landed or failed
  void idle();           // the plan is done (or dropped)
  // Multiply-adds per second of the backend's nearest search (measureThroughput).
  void throughputMeasured(double multiplyAddsPerSecond);

 private:
  struct BackendHolder;
  QString baseKey(const kvq::RvqConfig& config, const QList<int>& layers) const;
  kvq::RvqConfig sizedConfig(int size) const;
  void startNext();
  void onFinished();
  void measure();
  JobQueue* queue() const;

  QPointer<JobQueue> m_fallback;
  JobQueue* m_own = nullptr;  // child; nullptr when reads cannot run on a second thread
  Answered m_answered;
  SessionPtr m_session;
  std::shared_ptr<BackendHolder> m_backend;  // used on the background thread only
  QString m_choice = QStringLiteral("cpu");
  Range m_range;
  bool m_enabled = true;

  // The plan.
  QString m_base;  // baseKey of the plan ("" when none)
  kvq::RvqConfig m_config;
  QList<int> m_layers;
  kvq::AttentionOptions m_attention;
  int64_t m_sampleVectors = 0;
  QList<int> m_pending;          // sizes to train, next first
  QHash<int, QString> m_failed;  // size -> message
  int m_running = 0;             // size being trained, 0 when none
  quint64 m_runningId = 0;
  double m_progress = 0;
  int m_trained = 0;
};

}  // namespace kvq::ui
