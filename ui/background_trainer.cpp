#include "background_trainer.h"

#include <algorithm>
#include <utility>

#include "config_settings.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/study/work_estimate.h"
#include "low_priority.h"
#include "study_controller.h"

namespace kvq::ui {

// The background thread's own backend, created there on first use (a CUDA backend
// must not be shared with the GUI's worker, which may use its own at the same time).
struct BackgroundTrainer::BackendHolder {
  std::unique_ptr<kvq::Backend> backend;
  kvq::Backend& get(const std::string& choice) {
    if (!backend) backend = kvq::makeBackend(choice);
    return *backend;
  }
};

BackgroundTrainer::BackgroundTrainer(JobQueue* fallback, Answered answered, QObject* parent)
    : QObject(parent),
      m_fallback(fallback),
      m_answered(std::move(answered)),
      m_backend(std::make_shared<BackendHolder>()) {
  if (kvq::DumpReader::concurrentReadsSafe()) m_own = new JobQueue(this);
  if (JobQueue* q = queue()) {
    connect(q, &JobQueue::taskProgress, this, [this](const QString& tag, quint64 id, double fraction) {
      if (tag != job_tag::kBackgroundSize || id != m_runningId) return;
      m_progress = fraction;
      emit statusChanged();
    });
    connect(q, &JobQueue::taskFinished, this, [this](const QString& tag, quint64 id) {
      if (tag == job_tag::kBackgroundSize && id == m_runningId && id != 0) onFinished();
    });
  }
  measure();
}

BackgroundTrainer::~BackgroundTrainer() {
  // The backend and the session die on the thread that used them, before it stops.
  if (JobQueue* q = queue()) {
    q->dispose(std::move(m_backend));
    q->dispose(std::move(m_session));
  }
  delete m_own;  // cancels the running size and joins
}

JobQueue* BackgroundTrainer::queue() const {
  return m_own != nullptr ? m_own : m_fallback.data();
}

void BackgroundTrainer::setEnabled(bool enabled) {
  m_enabled = enabled;
  if (!enabled) {
    cancel();
    m_base.clear();
  }
}

void BackgroundTrainer::setSession(SessionPtr session) {
  cancel();
  m_base.clear();
  if (JobQueue* q = queue())
    q->dispose(std::exchange(m_session, std::move(session)));
  else
    m_session = std::move(session);
}

void BackgroundTrainer::setBackendChoice(const QString& choice) {
  cancel();
  m_base.clear();
  if (JobQueue* q = queue()) q->dispose(std::exchange(m_backend, std::make_shared<BackendHolder>()));
  m_choice = choice;
  measure();
}

void BackgroundTrainer::measure() {
  JobQueue* q = queue();
  if (q == nullptr) return;
  const std::shared_ptr<BackendHolder> holder = m_backend;
  const std::string choice = m_choice.toStdString();
  q->run<double>(
      job_tag::kCalibrate, tr("Measuring the %1 backend").arg(m_choice), this,
      [holder, choice](const kvq::TaskControl&) { return kvq::measureThroughput(holder->get(choice)); },
      [this](double& throughput) { emit throughputMeasured(throughput); });
}

QString BackgroundTrainer::baseKey(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session) return {};
  kvq::RvqConfig base = config;
  base.codebookSize = 0;  // the plan varies C (and the key ignores K)
  return StudyController::cacheKey(m_session->path, base, layers);
}

kvq::RvqConfig BackgroundTrainer::sizedConfig(int size) const {
  kvq::RvqConfig config = m_config;
  config.codebookSize = size;
  config.depth = m_range.maxDepth;
  return config;
}

void BackgroundTrainer::plan(const kvq::RvqConfig& config, const QList<int>& layers, int64_t sampleVectors) {
  if (!m_enabled || !m_session) return;
  const QString base = baseKey(config, layers);
  if (base != m_base) {
    cancel();
    m_base = base;
    m_config = config;
    m_layers = layers;
    m_failed.clear();
  }
  m_sampleVectors = sampleVectors;
  QList<int> sizes{config.codebookSize};
  for (int size : kvq::neighbourSizes(config.codebookSize, m_range.minSize, m_range.maxSize)) sizes << size;
  const int heads = config.perHead ? m_session->info().numKvHeads : 1;
  const int quantizers = static_cast<int>(layers.size()) * 2 * heads;  // keys and values
  double bytes = 0;
  for (int size : sizes) {
    const kvq::RvqConfig sized = sizedConfig(size);
    if (size > m_sampleVectors) continue;  // cannot be trained: request() says why
    bytes += kvq::studyBytes(sized, quantizers);
    if (bytes > kPlanBytes) break;
    if (m_answered(sized, m_layers) || m_running == size || m_pending.contains(size)) continue;
    m_pending << size;
  }
  startNext();
  emit statusChanged();
}

bool BackgroundTrainer::request(const kvq::RvqConfig& config, const QList<int>& layers) {
  if (!m_enabled || m_base.isEmpty() || config.depth > m_range.maxDepth || baseKey(config, layers) != m_base)
    return false;
  const int size = config.codebookSize;
  if (size > m_sampleVectors && !m_failed.contains(size)) {
    m_failed.insert(
        size,
        tr("C = %1 needs at least %1 training vectors; the sample has %2.").arg(size).arg(m_sampleVectors));
    emit statusChanged();
  }
  if (m_failed.contains(size)) return false;
  if (m_running == size || m_answered(sizedConfig(size), m_layers)) return true;
  m_pending.removeAll(size);
  m_pending.prepend(size);
  if (m_running != 0) {
    // The size the user looks at goes first: the running one starts again after it.
    const int preempted = m_running;
    m_running = 0;
    m_runningId = 0;
    if (JobQueue* q = queue()) q->cancel(job_tag::kBackgroundSize);
    m_pending.insert(1, preempted);
  }
  startNext();
  emit statusChanged();
  return true;
}

BackgroundTrainer::Status BackgroundTrainer::status(const kvq::RvqConfig& config,
                                                    const QList<int>& layers) const {
  Status s;
  if (m_base.isEmpty() || baseKey(config, layers) != m_base) return s;
  const int size = config.codebookSize;
  if (m_failed.contains(size)) {
    s.state = State::Failed;
    s.message = m_failed.value(size);
  } else if (m_running == size) {
    s.state = State::Training;
    s.progress = m_progress;
  } else if (m_pending.contains(size)) {
    s.state = State::Queued;
  } else if (config.depth <= m_range.maxDepth && m_answered(sizedConfig(size), m_layers)) {
    s.state = State::Answered;
  }
  return s;
}

void BackgroundTrainer::cancel() {
  const bool wasBusy = !isIdle();
  m_pending.clear();
  if (m_running != 0) {
    m_running = 0;
    m_runningId = 0;
    if (JobQueue* q = queue()) q->cancel(job_tag::kBackgroundSize);
  }
  if (wasBusy) {
    emit statusChanged();
    emit idle();
  }
}

void BackgroundTrainer::startNext() {
  JobQueue* q = queue();
  if (m_running != 0 || q == nullptr || !m_session) return;
  while (!m_pending.isEmpty() && m_answered(sizedConfig(m_pending.front()), m_layers))
    m_pending.removeFirst();
  if (m_pending.isEmpty()) return;
  const int size = m_pending.takeFirst();
  kvq::StudyOptions options;
  options.config = sizedConfig(size);
  options.layers.assign(m_layers.begin(), m_layers.end());
  options.attention = m_attention;
  options.attention.rvqDepths.clear();  // every depth of this training
  for (int k = 1; k <= options.config.depth; ++k) options.attention.rvqDepths.push_back(k);
  const SessionPtr session = m_session;
  const std::shared_ptr<BackendHolder> holder = m_backend;
  const std::string choice = m_choice.toStdString();
  m_running = size;
  m_progress = 0;
  m_runningId = q->run<StudyPtr>(
      job_tag::kBackgroundSize, tr("Training C=%1 in the background").arg(size), this,
      [session, holder, choice, options](const kvq::TaskControl& control) -> StudyPtr {
        StudyPtr study;
        runAtLowPriority(
            [&](const kvq::TaskControl& inner) {
              kvq::Backend& backend = holder->get(choice);
              kvq::validateConfig(options.config, session->info().headDim);
              study = std::make_shared<const kvq::StudyResult>(
                  kvq::runStudy(*session->reader, options, backend, &inner));
            },
            control);
        return study;
      },
      [this](StudyPtr& study) {
        ++m_trained;
        emit studyReady(study);
      },
      [this, size](const kvq::Error& error) { m_failed.insert(size, errorText(error)); });
}

void BackgroundTrainer::onFinished() {
  m_running = 0;
  m_runningId = 0;
  startNext();
  emit statusChanged();
  if (isIdle()) emit idle();
}

}  // namespace kvq::ui
