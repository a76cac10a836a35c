#include "study_controller.h"

#include <QFileInfo>

#include <algorithm>
#include <limits>
#include <utility>

#include "config_settings.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_fit.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/study/work_estimate.h"
#include "study_queries.h"

namespace kvq::ui {

StudyController::StudyController(JobQueue* jobs, QObject* parent)
    : QObject(parent),
      m_jobs(jobs),
      m_backend(kvq::makeBackend("cpu")),
      m_background(new BackgroundTrainer(
          jobs,
          [this](const kvq::RvqConfig& config, const QList<int>& layers) {
            return lookup(config, layers) != nullptr;
          },
          this)) {
  m_backendName = QString::fromStdString(m_backend->name());
  connect(m_background, &BackgroundTrainer::studyReady, this, [this](const StudyPtr& study) {
    QList<int> layers;
    for (int layer : studyLayers(*study)) layers << layer;
    if (m_session)
      store(cacheKey(m_session->path, study->config, layers, !study->attention.layers.empty()), study);
    emit backgroundResult(study);
  });
  connect(m_background, &BackgroundTrainer::throughputMeasured, this, [this](double throughput) {
    if (m_throughputFromTraining) return;  // a real training measured the whole pipeline
    m_throughput = throughput;
    emit throughputChanged(m_throughput);
  });
  if (m_jobs) {
    connect(m_jobs, &JobQueue::taskFinished, this, [this](const QString& tag) {
      if (tag == job_tag::kTrain && m_jobs && !m_jobs->isPending(job_tag::kTrain)) m_pendingKey.clear();
    });
  }
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
  if (m_jobs && m_jobs->isPending(job_tag::kPreview)) m_jobs->cancel(job_tag::kPreview);
  m_pendingKey.clear();
  m_preview.reset();
  m_previewKey.clear();
  m_lastFull.reset();
  m_lastLayers.clear();
  m_background->setSession(m_session);
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
      [this, choice](BackendPtr& backend) {
        if (m_jobs) m_jobs->dispose(std::move(m_backend));
        m_backend = std::move(backend);
        m_backendName = QString::fromStdString(m_backend->name());
        m_background->setBackendChoice(choice);
        m_throughputFromTraining = false;  // measured again, on the new backend
        emit backendChanged(m_backendName);
      },
      [this](const kvq::Error& error) { emit backendFailed(errorText(error)); });
}

bool StudyController::isTraining() const {
  return m_jobs && m_jobs->isPending(job_tag::kTrain);
}

QString StudyController::cacheKey(const QString& dump, const kvq::RvqConfig& config, const QList<int>& layers,
                                  bool attention) {
  kvq::RvqConfig keyed = config;
  keyed.depth = 0;    // depth is read from the curve, not trained separately
  keyed.preset = "";  // a preset name is a label, the settings are the key
  QStringList layerText;
  for (int l : layers) layerText << QString::number(l);
  return dump + QLatin1Char('|') + layerText.join(QLatin1Char(',')) + QLatin1Char('|') +
         QString::fromStdString(kvq::configToJson(keyed)) +
         (attention ? QStringLiteral("|attention") : QString());
}

bool StudyController::measuresAttention(const QList<int>& layers) const {
  if (!m_attention || !m_session) return false;
  const QList<int> wanted = layers.isEmpty()
                                ? QList<int>(m_session->info().layers.begin(), m_session->info().layers.end())
                                : layers;
  return std::any_of(wanted.begin(), wanted.end(),
                     [this](int layer) { return m_session->reader->has(layer, kvq::Kind::Queries); });
}

kvq::AttentionOptions StudyController::attentionOptions(bool enabled, int depth) {
  kvq::AttentionOptions a;
  a.enabled = enabled;
  for (int k = 1; k <= depth; ++k) a.rvqDepths.push_back(k);
  return a;
}

QString StudyController::keyFor(const kvq::RvqConfig& config, const QList<int>& layers) const {
  return m_session ? cacheKey(m_session->path, config, layers, measuresAttention(layers)) : QString();
}

void StudyController::evaluate(const QString& codebooksPath, const kvq::OpenPolicy& policy) {
  if (!m_session || !m_jobs) return;
  const SessionPtr session = m_session;
  const std::shared_ptr<kvq::Backend> backend = m_backend;
  const bool attention = m_attention;
  m_jobs->run<StudyPtr>(
      job_tag::kEvaluate, tr("Evaluating %1").arg(QFileInfo(codebooksPath).fileName()), this,
      [session, backend, attention, codebooksPath, policy](const kvq::TaskControl& control) -> StudyPtr {
        const std::string path = codebooksPath.toStdString();
        // Validated in a limited child first, as every file the studio opens.
        const kvq::CodebookFile file = kvq::openCodebookFile(path, policy);
        kvq::checkCodebooksFitDump(file, path, session->info());
        kvq::StudyOptions options;
        options.config = file.config;
        options.kinds.clear();
        for (const kvq::QuantizerSet& set : file.sets) {
          if (std::find(options.kinds.begin(), options.kinds.end(), set.kind) == options.kinds.end())
            options.kinds.push_back(set.kind);
        }
        options.layers = kvq::codebookLayers(file);
        const bool queries = std::any_of(options.layers.begin(), options.layers.end(), [&](int layer) {
          return session->reader->has(layer, kvq::Kind::Queries);
        });
        options.attention = attentionOptions(attention && queries, file.config.depth);
        return std::make_shared<const kvq::StudyResult>(
            kvq::evaluateCodebooks(*session->reader, file.sets, path, options, *backend, &control));
      },
      [this, codebooksPath](StudyPtr& study) { emit evaluationReady(study, codebooksPath); },
      [this, codebooksPath](const kvq::Error& error) {
        emit evaluationFailed(codebooksPath, QString::fromStdString(error.what()));
      });
}

StudyPtr StudyController::lookup(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session) return nullptr;
  const StudyPtr hit = m_cache.value(keyFor(config, layers));
  return hit && hit->config.depth >= config.depth && hit->backendName == m_backendName.toStdString()
             ? hit
             : nullptr;
}

StudyPtr StudyController::lookupShallower(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session) return nullptr;
  const StudyPtr hit = m_cache.value(keyFor(config, layers));
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

bool StudyController::isTrainingFor(const kvq::RvqConfig& config, const QList<int>& layers) const {
  return m_session && m_jobs && m_jobs->isPending(job_tag::kTrain) && m_pendingDepth >= config.depth &&
         m_pendingKey == keyFor(config, layers);
}

StudyPtr StudyController::lookupPreview(const kvq::RvqConfig& config, const QList<int>& layers) const {
  if (!m_session || !m_preview || m_previewKey != keyFor(config, layers)) return nullptr;
  return m_preview;
}

bool StudyController::train(const kvq::RvqConfig& config, const QList<int>& layers, Mode mode) {
  if (!m_session || !m_jobs) return false;
  if (const StudyPtr hit = lookup(config, layers)) {
    m_jobs->cancel(job_tag::kPreview);
    m_jobs->cancel(job_tag::kTrain);
    emit resultReady(hit);
    return false;
  }
  if (isTrainingFor(config, layers)) return true;  // the same training is under way
  const QString key = keyFor(config, layers);
  const kvq::RvqConfig preview = kvq::previewConfig(config);
  // A preview only when it is much quicker than the full recipe (evaluation costs both the same).
  const bool withPreview =
      mode == Mode::Progressive &&
      2 * studyWork(preview, layers, false) < studyWork(config, layers, measuresAttention(layers));
  m_preview.reset();
  m_previewKey.clear();
  if (withPreview)
    submit(job_tag::kPreview, preview, layers, true);
  else
    m_jobs->cancel(job_tag::kPreview);
  submit(job_tag::kTrain, config, layers, false);
  m_pendingKey = key;
  m_pendingDepth = config.depth;
  return true;
}

void StudyController::submit(const QString& tag, const kvq::RvqConfig& config, const QList<int>& layers,
                             bool preview) {
  ++m_trainRequests;
  const SessionPtr session = m_session;
  const std::shared_ptr<kvq::Backend> backend = m_backend;
  kvq::StudyOptions options;
  options.config = config;
  options.layers.assign(layers.begin(), layers.end());
  // Previews stay quick: attention is measured by the full training only.
  options.attention = attentionOptions(!preview && measuresAttention(layers), config.depth);
  const QString label = (preview ? tr("Preview C=%1 K=%2 g=%3") : tr("Training C=%1 K=%2 g=%3"))
                            .arg(config.codebookSize)
                            .arg(config.depth)
                            .arg(config.groupSize);
  m_jobs->run<StudyPtr>(
      tag, label, this,
      [session, backend, options](const kvq::TaskControl& control) -> StudyPtr {
        kvq::validateConfig(options.config, session->info().headDim);
        return std::make_shared<const kvq::StudyResult>(
            kvq::runStudy(*session->reader, options, *backend, &control));
      },
      [this, preview, layers](StudyPtr& study) {
        if (!preview) {
          onFullResult(study, layers);
          return;
        }
        m_preview = study;
        m_previewKey = m_pendingKey;
        emit previewReady(study);
      },
      [this, preview](const kvq::Error& error) {
        // A failing preview is reported once, by the full training that follows it.
        if (!preview) emit trainingFailed(errorText(error));
      });
}

void StudyController::onFullResult(const StudyPtr& study, const QList<int>& layers) {
  ++m_trainings;
  if (m_session) store(keyFor(study->config, layers), study);
  const double work = studyWork(study->config, layers, !study->attention.layers.empty());
  if (study->totalSeconds > 0 && work > 0) {
    m_throughput = work / study->totalSeconds;
    m_throughputFromTraining = true;
    emit throughputChanged(m_throughput);
  }
  m_lastFull = study;
  m_lastLayers = layers;
  planBackground();
  emit resultReady(study);
}

void StudyController::planBackground() {
  if (!m_lastFull || m_lastFull->jobs.empty() || m_lastFull->jobs.front().quantizers.empty()) return;
  // The vectors one quantizer trained on, after the trainer's subsampling.
  const int64_t sample =
      std::min(m_lastFull->config.trainSample, m_lastFull->jobs.front().quantizers.front().trainVectors);
  m_background->setAttention(attentionOptions(measuresAttention(m_lastLayers), m_lastFull->config.depth));
  m_background->plan(m_lastFull->config, m_lastLayers, sample);
}

void StudyController::setBackgroundEnabled(bool on) {
  m_background->setEnabled(on);
  if (on) planBackground();
}

double StudyController::studyWork(const kvq::RvqConfig& config, const QList<int>& layers,
                                  bool attention) const {
  if (!m_session) return 0.0;
  const kvq::DumpInfo& info = m_session->info();
  try {
    const kvq::TokenSplit split = kvq::splitTokens(info.tokens, info.sequenceStarts, config.heldOutFraction);
    const QList<int> chosen = layers.isEmpty() ? QList<int>(info.layers.begin(), info.layers.end()) : layers;
    const auto count = static_cast<int>(chosen.size());
    double work = kvq::studyWork(config, info, count, 2, split.trainTokens, split.heldOutTokens);
    if (attention) {
      const auto withQueries =
          static_cast<int>(std::count_if(chosen.begin(), chosen.end(), [this](int layer) {
            return m_session->reader->has(layer, kvq::Kind::Queries);
          }));
      work += kvq::attentionWork(config, attentionOptions(true, config.depth), info, withQueries,
                                 split.heldOutTokens);
    }
    return work;
  } catch (const kvq::Error&) {
    return 0.0;  // settings the training would refuse: no estimate
  }
}

double StudyController::estimateSeconds(const kvq::RvqConfig& config, const QList<int>& layers) const {
  const double work = studyWork(config, layers, measuresAttention(layers));
  if (work <= 0 || m_throughput <= 0) return std::numeric_limits<double>::infinity();
  return work / m_throughput;
}

}  // namespace kvq::ui
