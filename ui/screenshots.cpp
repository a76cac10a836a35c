#include "screenshots.h"

#include <QCoreApplication>
#include <QDir>
#include <QSettings>

#include <cstdio>
#include <memory>

#include "attention_layer_chart.h"
#include "channel_chart.h"
#include "chart_export.h"
#include "chart_widget.h"
#include "charts_panel.h"
#include "dataset_panel.h"
#include "event_wait.h"
#include "job_queue.h"
#include "job_tags.h"
#include "main_window.h"
#include "message_presenter.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"
#include "rate_distortion_chart.h"
#include "settings_panel.h"

namespace kvq::ui {
namespace {

bool save(QWidget* widget, const QString& path) {
  if (!widget->grab().save(path)) {
    std::fprintf(stderr, "cannot write %s\n", qPrintable(path));
    return false;
  }
  std::printf("wrote %s\n", qPrintable(path));
  return true;
}

// Exports chart to dir/<its file stem><suffix> (the format from the suffix's extension).
bool exportChart(ChartWidget* chart, const QString& dir, const QString& suffix) {
  const QString path = QDir(dir).filePath(chart->fileStem() + suffix);
  try {
    exportWidgetImage(chart, path);
    std::printf("wrote %s\n", qPrintable(path));
    return true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return false;
  }
}

// The rate–distortion chart under each of its y axes (attention ones only when measured).
bool saveRateDistortionAxes(ChartsPanel* charts, const QString& dir) {
  RateDistortionChart* rd = charts->rateDistortion();
  charts->setCurrentWidget(rd);  // a chart redrawn while hidden is laid out only when shown
  bool ok = true;
  for (const RdMetric metric : {RdMetric::AttentionOutput, RdMetric::AttentionKl}) {
    rd->setMetric(metric);
    QCoreApplication::processEvents();
    if (rd->isPlaceholder()) continue;
    ok = exportChart(rd, dir, QStringLiteral(".png")) && ok;
  }
  rd->setMetric(RdMetric::RelativeError);
  QCoreApplication::processEvents();
  return ok;
}

// Evaluates `codebooks` on the open dump and saves the charts that show it.
bool saveComparison(MainWindow& window, RecordingPresenter& presenter, const QString& codebooks,
                    const QString& dir) {
  window.evaluateCodebooks(codebooks);
  if (!waitForSignal(&window, &MainWindow::comparisonReady, 600'000)) {
    std::fprintf(stderr, "cannot evaluate %s: %s\n", qPrintable(codebooks),
                 qPrintable(presenter.errors.join('\n')));
    return false;
  }
  ChartsPanel* charts = window.chartsPanel();
  charts->setCurrentWidget(charts->rateDistortion());
  charts->rateDistortion()->setMetric(RdMetric::AttentionOutput);
  bool ok = true;
  for (ChartWidget* chart : {static_cast<ChartWidget*>(charts->rateDistortion()),
                             static_cast<ChartWidget*>(charts->attentionByLayer())}) {
    charts->setCurrentWidget(chart);
    QCoreApplication::processEvents();
    ok = exportChart(chart, dir, QStringLiteral("_compared.png")) && ok;
  }
  charts->rateDistortion()->setMetric(RdMetric::RelativeError);
  return ok;
}

// Opens `kvq ppl --json` reports in the Model impact view and saves it.
bool saveModelImpact(MainWindow& window, RecordingPresenter& presenter, const QStringList& reports,
                     const QString& dir) {
  ChartsPanel* charts = window.chartsPanel();
  window.openModelResults(reports);
  if (!presenter.errors.isEmpty()) {
    std::fprintf(stderr, "cannot chart the reports: %s\n", qPrintable(presenter.errors.join('\n')));
    return false;
  }
  charts->setCurrentWidget(charts->modelImpact());
  QCoreApplication::processEvents();
  bool ok = save(&window, QDir(dir).filePath(QStringLiteral("model_impact_view.png")));
  return exportChart(charts->modelImpact()->chart(), dir, QStringLiteral(".png")) && ok;
}

}  // namespace

int renderScreenshots(const QString& dump, const QString& dir, const QString& compare,
                      const QStringList& modelResults) {
  // Keep the user's recent files and window layout out of it.
  QCoreApplication::setOrganizationName(QStringLiteral("kvq-screenshots"));
  QSettings().clear();  // the same first-run layout every time
  if (dump.isEmpty()) {
    std::fprintf(stderr, "no dump to open (pass a file)\n");
    return 2;
  }
  QDir().mkpath(dir);
  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  window.resize(1440, 880);
  window.show();
  window.openFile(dump);
  if (!waitForSignal(&window, &MainWindow::sessionChanged, 600'000)) {
    std::fprintf(stderr, "cannot open %s: %s\n", qPrintable(dump), qPrintable(presenter->errors.join('\n')));
    return 1;
  }
  SettingsPanel* settings = window.settingsPanel();
  settings->applyPreset(QStringLiteral("fast"));
  settings->setCodebookSize(2048);  // K = 8 is then the paper's 3 bits/channel, KIVI-2's
  settings->setDepth(8);
  const std::vector<int>& layers = window.session()->info().layers;
  const int last = layers[std::min<size_t>(layers.size(), 4) - 1];
  settings->setLayersText(QStringLiteral("%1-%2").arg(layers.front()).arg(last));
  bool shotDuringTraining = false;
  bool ok = true;
  // One picture mid-training: the status bar's progress, time left and cancel.
  QObject::connect(window.jobs(), &JobQueue::taskProgress, &window,
                   [&](const QString& tag, quint64, double fraction) {
                     if (shotDuringTraining || tag != job_tag::kTrain || fraction < 0.3) return;
                     shotDuringTraining = true;
                     ok = save(&window, QDir(dir).filePath(QStringLiteral("training.png"))) && ok;
                   });
  window.train();
  if (!waitForSignal(&window, &MainWindow::chartsUpdated, 600'000) || !presenter->errors.isEmpty()) {
    std::fprintf(stderr, "training failed: %s\n", qPrintable(presenter->errors.join('\n')));
    return 1;
  }
  settings->setDepth(6);  // a depth inside the curve shows the highlight mid-way
  window.datasetPanel()->select(layers.front(), kvq::Kind::Keys, -1);
  QCoreApplication::processEvents();

  ok = save(&window, QDir(dir).filePath(QStringLiteral("main_window.png"))) && ok;
  ChartsPanel* charts = window.chartsPanel();
  for (ChartWidget* chart : charts->charts()) {
    charts->setCurrentWidget(chart);
    QCoreApplication::processEvents();
    if (chart == charts->channels())
      ok = save(&window, QDir(dir).filePath(QStringLiteral("main_window_channels.png"))) && ok;
    ok = exportChart(chart, dir, QStringLiteral(".png")) && ok;
  }
  ok = saveRateDistortionAxes(charts, dir) && ok;
  if (!compare.isEmpty()) ok = saveComparison(window, *presenter, compare, dir) && ok;
  if (!modelResults.isEmpty()) ok = saveModelImpact(window, *presenter, modelResults, dir) && ok;
  // The codebook-size slider moved to a size the background is still training: the
  // charts keep the trained size and say that the new one is on its way.
  charts->setCurrentWidget(charts->rateDistortion());
  settings->setCodebookSize(4096);
  QCoreApplication::processEvents();
  ok = save(&window, QDir(dir).filePath(QStringLiteral("background_training.png"))) && ok;
  window.close();
  return ok ? 0 : 1;
}

}  // namespace kvq::ui
