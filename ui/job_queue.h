// JobQueue — the GUI's single worker thread and its queue of jobs (Tracy's Worker,
// RenderDoc's ReplayManager: "newest request per tag"). The engine is core; this
// only decides on which thread and in which order the GUI calls it.
//
// Every long operation of the GUI (opening a dump, statistics, training, head
// reads, codebook writes) runs here, never on the UI thread. Requests carry a tag
// naming what they compute (job_tags.h); a new request for a tag replaces a queued
// one that has not started — so scrubbing a control never queues stale work — and
// cancels the running one through its kvq::TaskControl flag. Results come back to
// the UI thread by queued call; results of superseded requests are dropped there.
// Destruction cancels the running request, drops queued ones and joins.
//
// Objects that must be destroyed on the worker (e.g. a DumpReader: HDF5 is used
// from this thread only) are handed to dispose().
#pragma once

#include <QHash>
#include <QObject>
#include <QPointer>
#include <QString>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/task.h"

namespace kvq::ui {

class JobQueue : public QObject {
  Q_OBJECT

 public:
  enum class Outcome { Done, Failed, Cancelled, Superseded };
  Q_ENUM(Outcome)

  // A job runs on the worker thread and returns the continuation to run on the UI
  // thread (may be empty). It reports progress and polls cancellation via control.
  using Job = std::function<std::function<void()>(const kvq::TaskControl& control)>;

  explicit JobQueue(QObject* parent = nullptr);
  ~JobQueue() override;
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  using ErrorHandler = std::function<void(const kvq::Error& error)>;

  // Queues job under tag; label is shown in the status bar. onError runs on the UI
  // thread when the job throws (not when it is cancelled). Returns the request id.
  quint64 submit(const QString& tag, const QString& label, Job job, ErrorHandler onError = {});

  // Typed convenience: work() runs on the worker; onResult(result) and
  // onError(error) run on the UI thread, and only while context is alive and the
  // request is still the newest for its tag. Cancellation is not an error.
  template <class T>
  quint64 run(const QString& tag, const QString& label, QObject* context,
              std::function<T(const kvq::TaskControl&)> work, std::function<void(T&)> onResult,
              std::function<void(const kvq::Error&)> onError = {});

  void cancel(const QString& tag);  // cancels the running and drops the queued request of tag
  void cancelAll();
  bool isPending(const QString& tag) const;  // queued or running (UI-thread view)
  quint64 latestId(const QString& tag) const { return m_latest.value(tag, 0); }

  // Destroys object on the worker thread (after the running job).
  void dispose(std::shared_ptr<const void> object);

 signals:
  void taskStarted(const QString& tag, quint64 id, const QString& label);
  // fraction 0..1; stage: the job's label for the current step. Throttled (~25 Hz).
  void taskProgress(const QString& tag, quint64 id, double fraction, const QString& stage);
  // message: the error text for Failed, empty otherwise.
  void taskFinished(const QString& tag, quint64 id, kvq::ui::JobQueue::Outcome outcome,
                    const QString& message);

 private:
  struct Request {
    QString tag;
    QString label;
    quint64 id = 0;
    Job job;
  };

  void loop();
  // Worker: waits for the next request (destroying trash and dropped jobs outside the
  // lock); false when the queue is stopping. request.job is empty when only trash came.
  bool takeNext(Request& request, std::shared_ptr<std::atomic<bool>>& cancelFlag);
  // Worker: runs one request and posts its outcome to the UI thread.
  void execute(Request request, const std::shared_ptr<std::atomic<bool>>& cancelFlag);
  // Under m_mutex: removes the queued request of tag (its job is destroyed on the
  // worker) and flags the running one of tag. Returns the removed request's id, 0 if none.
  quint64 withdrawLocked(const QString& tag);
  // UI thread: a request withdrawn from the queue before it ran finishes as outcome.
  void finishWithdrawn(const QString& tag, quint64 id, Outcome outcome);
  void post(std::function<void()> onUiThread);
  void deliver(const QString& tag, quint64 id, Outcome outcome, const std::shared_ptr<kvq::Error>& error,
               std::function<void()> continuation);

  // Worker-side state, guarded by m_mutex.
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  std::deque<Request> m_queue;  // at most one request per tag
  std::vector<std::shared_ptr<const void>> m_trash;
  std::vector<Job> m_droppedJobs;  // destroyed on the worker: they may own readers
  QString m_runningTag;
  std::shared_ptr<std::atomic<bool>> m_runningCancel;
  bool m_stop = false;

  // UI-thread state.
  QHash<QString, quint64> m_latest;  // newest request id per tag
  QHash<QString, quint64> m_active;  // tag -> id not yet finished
  QHash<quint64, ErrorHandler> m_errorHandlers;
  quint64 m_nextId = 1;

  std::thread m_thread;  // last: started after everything above exists
};

template <class T>
quint64 JobQueue::run(const QString& tag, const QString& label, QObject* context,
                      std::function<T(const kvq::TaskControl&)> work, std::function<void(T&)> onResult,
                      std::function<void(const kvq::Error&)> onError) {
  QPointer<QObject> guard(context);
  ErrorHandler guardedError;
  if (onError) {
    guardedError = [guard, onError = std::move(onError)](const kvq::Error& error) {
      if (guard) onError(error);
    };
  }
  Job job = [guard, work = std::move(work),
             onResult = std::move(onResult)](const kvq::TaskControl& control) -> std::function<void()> {
    // shared_ptr: std::function needs a copyable closure; T may be move-only.
    auto result = std::make_shared<T>(work(control));
    return [guard, onResult, result]() {
      if (guard && onResult) onResult(*result);
    };
  };
  return submit(tag, label, std::move(job), std::move(guardedError));
}

}  // namespace kvq::ui
