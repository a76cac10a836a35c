// MainWindow: training, what the charts show, and exports.
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QRegularExpression>
#include <QStatusBar>

#include <atomic>
#include <memory>

#include "chart_export.h"
#include "chart_widget.h"
#include "charts_panel.h"
#include "dataset_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "main_window.h"
#include "message_presenter.h"
#include "settings_panel.h"
#include "study_export.h"
#include "study_queries.h"

namespace kvq::ui {
namespace {

QList<int> presentLayers(const SessionPtr& session) {
  QList<int> layers;
  if (session) {
    for (int l : session->info().layers) layers << l;
  }
  return layers;
}

// Appends the selected filter's suffix ("PNG image (*.png)" -> ".png") when the
// user typed a name without one.
QString withFilterSuffix(const QString& path, const QString& filter) {
  if (path.isEmpty() || !QFileInfo(path).suffix().isEmpty()) return path;
  static const QRegularExpression pattern(QStringLiteral("\\*\\.(\\w+)"));
  const QRegularExpressionMatch m = pattern.match(filter);
  return m.hasMatch() ? path + QLatin1Char('.') + m.captured(1) : path;
}

}  // namespace

void MainWindow::train() {
  if (!m_session) return;
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  if (layers.isEmpty()) {
    m_presenter->showError(this, tr("Nothing to train"), tr("None of the layers listed is in the dump."));
    return;
  }
  m_study->train(m_settings->config(), layers);
  updateNotice();
}

void MainWindow::onStudyReady(const StudyPtr& study) {
  m_shown = study;
  statusBar()->showMessage(tr("Trained %1 layer×kind quantizers in %2 s on %3")
                               .arg(study->jobs.size())
                               .arg(study->totalSeconds, 0, 'f', 1)
                               .arg(QString::fromStdString(study->backendName)),
                           8000);
  refreshStudyCharts();
  updateActions();
}

void MainWindow::onSelection(int layer, int kind, int head) {
  m_layer = layer;
  m_kind = static_cast<kvq::Kind>(kind);
  m_head = head;
  refreshStudyCharts();
  refreshChannels();
}

void MainWindow::onSettingsChanged() {
  updateTrainingEstimate();
  ensureTrained();
  refreshStudyCharts();
}

void MainWindow::ensureTrained() {
  if (!m_session) return;
  const kvq::RvqConfig config = m_settings->config();
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  if (layers.isEmpty() || m_study->lookup(config, layers) || m_study->isTrainingFor(config, layers)) return;
  // Codebook size and depth: the background plan trains them (no prompt, no button).
  if (m_study->background()->request(config, layers)) return;
  if (m_settings->autoTrain()) m_study->train(config, layers, StudyController::Mode::Progressive);
}

void MainWindow::updateTrainingEstimate() {
  if (!m_session) return;
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  m_settings->setTrainingEstimate(m_study->estimateSeconds(m_settings->config(), layers));
}

void MainWindow::onBackgroundResult(const StudyPtr& study) {
  if (!m_session) return;
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  // Redraw only when the new size answers what the settings ask; else only the notice changes.
  if (m_study->lookup(m_settings->config(), layers) == study)
    refreshStudyCharts();
  else
    updateNotice();
}

QString MainWindow::chartsNotice() const {
  return studyNotice(true);
}

QString MainWindow::studyNotice(bool withProgress) const {
  if (!m_session) return {};
  const kvq::RvqConfig config = m_settings->config();
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  if (m_study->lookup(config, layers)) return {};
  const QString what = tr("C = %1, K = %2").arg(config.codebookSize).arg(config.depth);
  if (m_study->isTrainingFor(config, layers)) {
    return m_study->lookupPreview(config, layers)
               ? tr("%1: showing a quick preview; the full recipe is training…").arg(what)
               : tr("%1 is training…").arg(what);
  }
  const BackgroundTrainer::Status status = m_study->background()->status(config, layers);
  switch (status.state) {
    case BackgroundTrainer::State::Training:
      return withProgress ? tr("%1 is training in the background (%2 %); shown when it lands.")
                                .arg(what)
                                .arg(qRound(100 * status.progress))
                          : tr("%1 is training in the background; shown when it lands.").arg(what);
    case BackgroundTrainer::State::Queued:
      return tr("%1 is queued for background training; shown when it lands.").arg(what);
    case BackgroundTrainer::State::Failed:
      return tr("%1 cannot be trained: %2").arg(what, status.message);
    case BackgroundTrainer::State::Answered:
      return {};
    case BackgroundTrainer::State::NotPlanned:
      break;
  }
  if (!m_shown) return tr("Not trained yet: press Train (Ctrl+T).");
  return m_settings->autoTrain()
             ? tr("Settings changed: training…")
             : tr("Settings changed: the charts show the previous training. Train (Ctrl+T) "
                  "to update.");
}

void MainWindow::updateNotice() {
  m_charts->setNotice(studyNotice(true));
  // The panel's status line without the percentage: its label wraps, and relaying out
  // the dock 25 times a second would keep the UI thread busy for nothing.
  const QString status = studyNotice(false);
  if (!status.isEmpty()) m_settings->setStatusText(status);
}

void MainWindow::refreshStudyCharts() {
  if (!m_session) return;
  const kvq::RvqConfig config = m_settings->config();
  const QList<int> layers = m_settings->layers(presentLayers(m_session));
  int depth = config.depth;
  StudyPtr study = m_study->lookup(config, layers);
  if (study) {
    m_shown = study;
    m_settings->setStatusText(
        tr("Showing the trained result (trained to K = %1).").arg(trainedDepth(*study)));
  } else if ((study = m_study->lookupPreview(config, layers)) ||
             (study = m_study->lookupShallower(config, layers))) {
    m_shown = study;
  } else if (!m_shown && m_comparison) {
    study = m_comparison;  // nothing trained here yet: the evaluated codebooks alone
    m_settings->setStatusText(
        tr("Showing the codebooks of %1. Train (Ctrl+T) to compare.").arg(m_comparisonLabel));
  } else {
    study = m_shown;
  }
  updateNotice();
  if (!study) return;
  depth = std::min(depth, trainedDepth(*study));
  // The depth and usage charts follow the dataset selection; a layer the study did
  // not train falls back to its first layer.
  const std::vector<int> trained = studyLayers(*study);
  int layer = m_layer;
  if (!trained.empty() && std::find(trained.begin(), trained.end(), layer) == trained.end())
    layer = trained.front();
  m_charts->setComparison(study == m_comparison ? nullptr : m_comparison, m_comparisonLabel);
  m_charts->setStudy(study, depth, layer, m_kind, m_head);
  emit chartsUpdated();
}

void MainWindow::refreshChannels() {
  if (!m_session) return;
  const kvq::RvqConfig config = m_settings->config();
  const int groupSize = config.groupSize;
  const kvq::Grouping grouping = config.grouping(m_kind);
  if (m_channelData.layer == m_layer && m_channelData.kind == m_kind && m_channelData.head == m_head &&
      !m_channelData.meanAbs.empty()) {
    m_charts->setChannels(m_channelData, groupSize, grouping);  // only the grouping changed
    return;
  }
  if (m_head < 0) {
    // Whole-layer magnitudes are part of the dump statistics: no read needed.
    for (const kvq::LayerStats& ls : m_session->stats) {
      if (ls.layer != m_layer) continue;
      const kvq::KindStats& ks = m_kind == kvq::Kind::Keys ? ls.keys : ls.values;
      m_channelData = ChannelData{m_layer, m_kind, -1, ks.channelMeanAbs, ks.channelMaxAbs};
      m_charts->setChannels(m_channelData, groupSize, grouping);
    }
    m_jobs->cancel(job_tag::kChannels);
    return;
  }
  const SessionPtr session = m_session;
  const int layer = m_layer;
  const kvq::Kind kind = m_kind;
  const int head = m_head;
  m_jobs->run<ChannelData>(
      job_tag::kChannels, tr("Reading layer %1 head %2").arg(layer).arg(head), this,
      [session, layer, kind, head](const kvq::TaskControl& control) {
        ChannelData values{layer, kind, head, {}, {}};
        headChannelMagnitudes(*session->reader, layer, kind, head, values.meanAbs, values.maxAbs, control);
        return values;
      },
      [this](ChannelData& values) {
        m_channelData = std::move(values);
        const kvq::RvqConfig c = m_settings->config();
        m_charts->setChannels(m_channelData, c.groupSize, c.grouping(m_channelData.kind));
      },
      [this](const kvq::Error& error) {
        m_presenter->showError(this, tr("Cannot read channels"), QString::fromStdString(error.what()));
      });
}

bool MainWindow::runExport(const std::function<QString()>& write) {
  try {
    statusBar()->showMessage(write(), 5000);
    return true;
  } catch (const kvq::Error& e) {
    m_presenter->showError(this, tr("Export failed"), QString::fromStdString(e.what()));
    return false;
  }
}

bool MainWindow::exportCurrentChart(const QString& path) {
  return runExport([&] {
    exportWidgetImage(m_charts->currentChart(), path);
    return tr("Saved %1").arg(QDir::toNativeSeparators(path));
  });
}

bool MainWindow::exportAllCharts(const QString& dir) {
  return runExport([&] {
    QStringList written;
    for (const QString& suffix : chartExportSuffixes()) written << m_charts->exportAll(dir, suffix);
    return tr("Saved %1 files to %2").arg(written.size()).arg(QDir::toNativeSeparators(dir));
  });
}

bool MainWindow::exportMetrics(const QString& path) {
  if (!m_shown) return false;
  return runExport([&] {
    writeMetricsFile(*m_shown, path);
    return tr("Saved %1").arg(QDir::toNativeSeparators(path));
  });
}

void MainWindow::exportCodebooks(const QString& path) {
  if (!m_shown) return;
  const StudyPtr study = m_shown;
  const QString tag = job_tag::exportTag(++m_exportCount, QFileInfo(path).absoluteFilePath());
  // Set once the file is in place: writing ignores cancellation (Cancel/Esc while
  // it runs), so a cancelled outcome after the write still saved the file.
  auto written = std::make_shared<std::atomic<bool>>(false);
  // Codebook files can be large (C·K·g floats per layer and kind): written on the worker.
  const quint64 id = m_jobs->submit(
      tag, tr("Writing %1").arg(QFileInfo(path).fileName()),
      [study, path, written](const kvq::TaskControl&) -> std::function<void()> {
        writeCodebooksFile(*study, path);
        written->store(true);
        return {};
      },
      [this](const kvq::Error& error) {
        m_presenter->showError(this, tr("Export failed"), QString::fromStdString(error.what()));
      });
  auto connection = std::make_shared<QMetaObject::Connection>();
  *connection = connect(
      m_jobs, &JobQueue::taskFinished, this,
      [this, id, path, connection, written](const QString&, quint64 finished, JobQueue::Outcome outcome) {
        if (finished != id) return;
        disconnect(*connection);
        const bool ok = outcome != JobQueue::Outcome::Failed && written->load();
        if (ok) statusBar()->showMessage(tr("Saved %1").arg(QDir::toNativeSeparators(path)), 5000);
        emit exportFinished(path, ok);
      });
}

void MainWindow::evaluateCodebooks(const QString& path) {
  if (!m_session) return;
  m_study->evaluate(path, openPolicy());
}

void MainWindow::evaluateCodebooksDialog() {
  if (!m_session) return;
  const QString path = QFileDialog::getOpenFileName(
      this, tr("Evaluate codebooks on %1").arg(QFileInfo(m_session->path).fileName()), QString(),
      tr("KVQ codebook files (*.h5);;All files (*)"));
  if (!path.isEmpty()) evaluateCodebooks(path);
}

void MainWindow::exportChartDialog() {
  ChartWidget* chart = m_charts->currentChart();
  if (chart == nullptr) return;
  QString filter;
  const QString path = withFilterSuffix(
      QFileDialog::getSaveFileName(this, tr("Export chart"), chart->fileStem() + QStringLiteral(".png"),
                                   tr("PNG image (*.png);;SVG vector image (*.svg);;PDF (*.pdf)"), &filter),
      filter);
  if (!path.isEmpty()) exportCurrentChart(path);
}

void MainWindow::exportChartsDialog() {
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Export all charts (PNG, SVG and PDF) to"));
  if (!dir.isEmpty()) exportAllCharts(dir);
}

void MainWindow::exportCodebooksDialog() {
  if (!m_shown) return;
  QString filter;
  const QString path = withFilterSuffix(
      QFileDialog::getSaveFileName(this, tr("Export codebooks"), QStringLiteral("codebooks.h5"),
                                   tr("KVQ codebook file (*.h5);;NumPy archive (*.npz)"), &filter),
      filter);
  if (!path.isEmpty()) exportCodebooks(path);
}

void MainWindow::exportMetricsDialog() {
  if (!m_shown) return;
  QString filter;
  const QString path =
      withFilterSuffix(QFileDialog::getSaveFileName(this, tr("Export metrics"), QStringLiteral("metrics.csv"),
                                                    tr("CSV table (*.csv);;JSON report (*.json)"), &filter),
                       filter);
  if (!path.isEmpty()) exportMetrics(path);
}

}  // namespace kvq::ui
