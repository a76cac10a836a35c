#include "job_queue.h"

#include <QMetaObject>

#include <chrono>
#include <exception>

namespace kvq::ui {
namespace {

// Progress events are posted at most this often per request: a training loop may
// report thousands of times per second, the status bar needs ~25 updates.
constexpr auto kProgressInterval = std::chrono::milliseconds(40);

}  // namespace

JobQueue::JobQueue(QObject* parent) : QObject(parent) {
  m_thread = std::thread([this] { loop(); });
}

JobQueue::~JobQueue() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
    if (m_runningCancel) m_runningCancel->store(true);
    for (Request& r : m_queue) m_droppedJobs.push_back(std::move(r.job));
    m_queue.clear();
  }
  m_wake.notify_all();
  m_thread.join();
  // Continuations already posted to this object are discarded by Qt with it.
}

quint64 JobQueue::withdrawLocked(const QString& tag) {
  quint64 withdrawn = 0;
  for (auto it = m_queue.begin(); it != m_queue.end(); ++it) {
    if (it->tag == tag) {
      withdrawn = it->id;
      m_droppedJobs.push_back(std::move(it->job));
      m_queue.erase(it);
      break;
    }
  }
  if (m_runningTag == tag && m_runningCancel) m_runningCancel->store(true);
  return withdrawn;
}

void JobQueue::finishWithdrawn(const QString& tag, quint64 id, Outcome outcome) {
  if (id == 0) return;
  m_errorHandlers.remove(id);
  if (m_active.value(tag) == id) m_active.remove(tag);
  emit taskFinished(tag, id, outcome, QString());
}

quint64 JobQueue::submit(const QString& tag, const QString& label, Job job, ErrorHandler onError) {
  const quint64 id = m_nextId++;
  m_latest[tag] = id;
  m_active[tag] = id;
  if (onError) m_errorHandlers.insert(id, std::move(onError));
  quint64 replaced = 0;
  {
    std::lock_guard lock(m_mutex);
    replaced = withdrawLocked(tag);
    m_queue.push_back(Request{tag, label, id, std::move(job)});
  }
  m_wake.notify_one();
  finishWithdrawn(tag, replaced, Outcome::Superseded);
  return id;
}

void JobQueue::cancel(const QString& tag) {
  quint64 dropped = 0;
  {
    std::lock_guard lock(m_mutex);
    dropped = withdrawLocked(tag);
  }
  m_wake.notify_one();
  finishWithdrawn(tag, dropped, Outcome::Cancelled);
}

void JobQueue::cancelAll() {
  const QStringList tags = m_active.keys();
  for (const QString& tag : tags) cancel(tag);
}

bool JobQueue::isPending(const QString& tag) const {
  return m_active.contains(tag);
}

void JobQueue::dispose(std::shared_ptr<const void> object) {
  if (!object) return;
  {
    std::lock_guard lock(m_mutex);
    m_trash.push_back(std::move(object));
  }
  m_wake.notify_one();
}

void JobQueue::post(std::function<void()> onUiThread) {
  QMetaObject::invokeMethod(this, std::move(onUiThread), Qt::QueuedConnection);
}

void JobQueue::loop() {
  for (;;) {
    Request request;
    std::shared_ptr<std::atomic<bool>> cancelFlag;
    if (!takeNext(request, cancelFlag)) return;
    if (request.job) execute(std::move(request), cancelFlag);
  }
}

bool JobQueue::takeNext(Request& request, std::shared_ptr<std::atomic<bool>>& cancelFlag) {
  std::vector<std::shared_ptr<const void>> trash;
  std::vector<Job> dropped;
  std::unique_lock lock(m_mutex);
  m_wake.wait(lock,
              [this] { return m_stop || !m_queue.empty() || !m_trash.empty() || !m_droppedJobs.empty(); });
  trash.swap(m_trash);
  dropped.swap(m_droppedJobs);
  const bool stop = m_stop;
  if (!stop && !m_queue.empty()) {
    request = std::move(m_queue.front());
    m_queue.pop_front();
    cancelFlag = std::make_shared<std::atomic<bool>>(false);
    m_runningTag = request.tag;
    m_runningCancel = cancelFlag;
  }
  lock.unlock();
  // Destroyed here, on the worker, outside the lock.
  trash.clear();
  dropped.clear();
  return !stop;
}

void JobQueue::execute(Request request, const std::shared_ptr<std::atomic<bool>>& cancelFlag) {
  const QString tag = request.tag;
  const quint64 id = request.id;
  post([this, tag, id, label = request.label] { emit taskStarted(tag, id, label); });

  auto lastPost = std::chrono::steady_clock::now() - kProgressInterval;
  kvq::TaskControl control;
  control.cancel = cancelFlag.get();
  control.onProgress = [&](double fraction, const std::string& stage) {
    const auto now = std::chrono::steady_clock::now();
    if (now - lastPost < kProgressInterval && fraction < 1.0) return;
    lastPost = now;
    post([this, tag, id, fraction, stageText = QString::fromStdString(stage)] {
      if (m_active.value(tag) == id) emit taskProgress(tag, id, fraction, stageText);
    });
  };

  Outcome outcome = Outcome::Done;
  std::shared_ptr<kvq::Error> error;
  std::function<void()> continuation;
  try {
    continuation = request.job(control);
    // A job that ignored its flag still finished; its result is stale if it was cancelled.
    if (cancelFlag->load()) outcome = Outcome::Cancelled;
  } catch (const kvq::Error& e) {
    if (e.kind() == kvq::ErrorKind::Cancelled) {
      outcome = Outcome::Cancelled;
    } else {
      outcome = Outcome::Failed;
      error = std::make_shared<kvq::Error>(e);
    }
  } catch (const std::bad_alloc&) {
    outcome = Outcome::Failed;
    error = std::make_shared<kvq::Error>(kvq::ErrorKind::Resource, "", "", "out of memory");
  } catch (const std::exception& e) {
    outcome = Outcome::Failed;
    error = std::make_shared<kvq::Error>(kvq::ErrorKind::Internal, "", "", e.what());
  }
  if (outcome == Outcome::Cancelled) continuation = nullptr;
  request.job = nullptr;  // its captures die here, on the worker
  {
    std::lock_guard lock(m_mutex);
    m_runningTag.clear();
    m_runningCancel.reset();
  }
  // mutable: deliver() takes the continuation over, so no copy of its result
  // (e.g. a session of a superseded open) is left behind on the UI thread.
  post([this, tag, id, outcome, error, continuation = std::move(continuation)]() mutable {
    deliver(tag, id, outcome, error, std::move(continuation));
  });
}

void JobQueue::deliver(const QString& tag, quint64 id, Outcome outcome,
                       const std::shared_ptr<kvq::Error>& error, std::function<void()> continuation) {
  ErrorHandler onError = m_errorHandlers.take(id);
  const bool newest = m_latest.value(tag) == id;
  if (m_active.value(tag) == id) m_active.remove(tag);
  if (!newest && outcome == Outcome::Done) outcome = Outcome::Superseded;
  const QString message = error ? QString::fromStdString(error->what()) : QString();
  if (outcome == Outcome::Done && continuation) continuation();
  // The continuation, run or not (superseded), still owns its result, which may hold
  // a DumpReader: released on the worker, like every other job capture.
  if (continuation) dispose(std::make_shared<std::function<void()>>(std::move(continuation)));
  if (outcome == Outcome::Failed && newest && onError) onError(*error);
  emit taskFinished(tag, id, outcome, message);
}

}  // namespace kvq::ui
