#include "study_controller.h"

#include <algorithm>
#include <utility>

#include "config_settings.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/io/codebook_file.h"
#include "kvq/rvq/backend_registry.h"

namespace kvq::ui {

StudyController::StudyController(JobQueue* jobs, QObject* parent)
    : QObject(parent), m_jobs(jobs), m_backend(kvq::makeBackend("cpu")) {
  m_backendName = QString::fromStdString(m_backend->name());
}

StudyController::~StudyController() {
  // The backend may still be in use by a queued or running job, which holds its own
  // reference; the job queue releases it on its thread.
  if (m_jobs) {
    m_jobs->dispose(std::move(m_backend));
    m_jobs->dispose(std::move(m_session));
  }
}

void StudyController::setSession(SessionPtr session) {
  // The old session may be the last reference to its DumpReader: it is released on
  // the worker thread, the only one that touches HDF5.
  if (m_jobs)
    m_jobs->dispose(std::exchange(m_session, std::move(session)));
  else
    m_session = std::move(session);
  if (m_jobs && m_jobs->isPending(job_tag::kTrain)) m_jobs->cancel(job_tag::kTrain);
}

QString StudyController::backendName() const {
  return m_backendName;
}

void StudyController::setBackendChoice(const QString& choice) {
  if (!m_jobs) return;
  using BackendPtr = std::shared_ptr<kvq::Backend>;
  m_jobs->run<BackendPtr>(
      job_tag::kBackend, tr("Starting the %1 backend").arg(choice), this,
      [choice](const kvq::TaskControl&) -> BackendPtr { return kvq::makeBackend(choice.toStdString()); },
      [this](BackendPtr& backend) {
        if (m_jobs) m_jobs->dispose(std::move(m_backend));
        m_backend = std::move(backend);
        m_backendName = QString::fromStdString(m_backend->name());
        emit backendChanged(m_backendName);
      },
      [this](const kvq::Error& error) { emit backendFailed(errorText(error)); });
}

bool StudyController::isTraining() const {
  return m_jobs && m_jobs->isPending(job_tag::kTrain);
}

QString StudyController::cacheKey(const QString& dump, const kvq::RvqConfig& config,
                                  const QList<int>& layers) {
  kvq::RvqConfig keyed = config;
  keyed.depth = 0;    // depth is read from the curve, not trained separately
  keyed.preset = "";  // a preset name is a label, the settings are the key
  QStringList layerText;
  for (int l : layers) layerText << QString::number(l);
  return dump + QLatin1Char('|') + layerText.join(QLatin1Char(',')) + QLatin1Char('|') +
         QString::fromStdString(kvq::configToJson(keyed));
}

StudyPtr StudyController::lookup(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session) return nullptr;
  const StudyPtr hit = m_cache.value(cacheKey(m_session->path, config, layers));
  return hit && hit->config.depth >= config.depth && hit->backendName == m_backendName.toStdString()
             ? hit
             : nullptr;
}

StudyPtr StudyController::lookupShallower(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session) return nullptr;
  const StudyPtr hit = m_cache.value(cacheKey(m_session->path, config, layers));
  return hit && hit->config.depth < config.depth && hit->backendName == m_backendName.toStdString() ? hit
                                                                                                    : nullptr;
}

void StudyController::store(const QString& key, StudyPtr study) {
  const StudyPtr old = m_cache.value(key);
  // A deeper training answers every depth of a shallower one: keep the deeper.
  if (old && old->config.depth > study->config.depth) return;
  m_cache.insert(key, std::move(study));
  m_recent.removeAll(key);
  m_recent.append(key);
  size_t bytes = 0;
  for (const StudyPtr& cached : std::as_const(m_cache)) bytes += approximateBytes(*cached);
  while (m_recent.size() > 1 && (m_recent.size() > kCacheEntries || bytes > kCacheBytes)) {
    const StudyPtr evicted = m_cache.take(m_recent.takeFirst());
    if (evicted) bytes -= approximateBytes(*evicted);
  }
}

size_t StudyController::approximateBytes(const kvq::StudyResult& study) {
  size_t bytes = sizeof(kvq::StudyResult);
  for (const kvq::LayerKindResult& job : study.jobs) {
    for (const kvq::QuantizerResult& q : job.quantizers) {
      bytes += q.codebooks.data.size() * sizeof(float);
      for (const kvq::StageUsage& u : q.usage) bytes += u.histogram.size() * sizeof(int64_t);
    }
    bytes += job.perHeadByDepth.size() * job.byDepth.size() * sizeof(kvq::ErrorSums);
  }
  return bytes;
}

bool StudyController::train(const kvq::RvqConfig& config, const QList<int>& layers) {
  if (!m_session || !m_jobs) return false;
  if (const StudyPtr hit = lookup(config, layers)) {
    m_jobs->cancel(job_tag::kTrain);
    emit resultReady(hit);
    return false;
  }
  const SessionPtr session = m_session;
  const std::shared_ptr<kvq::Backend> backend = m_backend;
  const QString key = cacheKey(session->path, config, layers);
  kvq::StudyOptions options;
  options.config = config;
  options.layers.assign(layers.begin(), layers.end());
  const QString label =
      tr("Training C=%1 K=%2 g=%3").arg(config.codebookSize).arg(config.depth).arg(config.groupSize);
  m_jobs->run<StudyPtr>(
      job_tag::kTrain, label, this,
      [session, backend, options](const kvq::TaskControl& control) -> StudyPtr {
        kvq::validateConfig(options.config, session->info().headDim);
        return std::make_shared<const kvq::StudyResult>(
            kvq::runStudy(*session->reader, options, *backend, &control));
      },
      [this, key](StudyPtr& study) {
        ++m_trainings;
        store(key, study);
        emit resultReady(study);
      },
      [this](const kvq::Error& error) { emit trainingFailed(errorText(error)); });
  return true;
}

}  // namespace kvq::ui
