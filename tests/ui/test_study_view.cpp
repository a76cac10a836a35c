// Stage 2: training a small setting fills every chart with the StudyResult's
// numbers; the depth slider redraws without training; the cache answers repeated
// settings; every export format is written and read back; failures keep files.
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QFile>
#include <QImage>
#include <QLineSeries>
#include <QScatterSeries>
#include <QScopeGuard>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "allocation_chart.h"
#include "attention_layer_chart.h"
#include "channel_chart.h"
#include "charts_panel.h"
#include "codebook_usage_chart.h"
#include "dataset_panel.h"
#include "depth_error_chart.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/io/codebook_file.h"
#include "layer_error_chart.h"
#include "main_window.h"
#include "message_presenter.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"
#include "rate_distortion_chart.h"
#include "settings_panel.h"
#include "study_queries.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;
using kvq::ui::test::waitUntil;

class StudyViewTest : public QObject, kvq::ui::test::WindowFixture {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void chartsMatchStudy();
  void depthSliderRedrawsWithoutTraining();
  void cacheAnswersRepeatedSettings();
  void channelChartMarksGroups();
  void exportsEveryFormat();
  void queuedExportsAllWrite();
  void failedExportKeepsExistingFile();
  void cancelledTrainingKeepsResult();
  void invalidSettingsShowCoreMessage();

 private:
  static constexpr int kDepth = 4;
  static constexpr int kLayers = 3;
};

namespace {

QLineSeries* lineNamed(ChartWidget* chart, const QString& name) {
  for (QAbstractSeries* s : chart->series()) {
    if (s->name() == name) return qobject_cast<QLineSeries*>(s);
  }
  return nullptr;
}

QScatterSeries* firstScatter(ChartWidget* chart) {
  for (QAbstractSeries* s : chart->series()) {
    if (auto* scatter = qobject_cast<QScatterSeries*>(s)) return scatter;
  }
  return nullptr;
}

bool close(double a, double b) {
  return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b));
}

}  // namespace

void StudyViewTest::initTestCase() {
  kvq::ui::test::initTestApplication(QStringLiteral("test_study_view"));
  QVERIFY(m_dir.isValid());
  const QString path = synthDump(QStringLiteral("study.h5"), kLayers, 32, 1024, 5);
  createWindow();
  QVERIFY(openAndWait(path));
  trainOnlyOnRequest();  // exactly the trainings this test asks for (test_sliders covers the others)
  setQuickConfig(32, kDepth);
  QCOMPARE(m_window->settingsPanel()->config().groupSize, 8);
  const QString trained = trainAndWait();
  QVERIFY2(trained.isEmpty(), qPrintable(trained));
  QVERIFY(m_window->shownStudy() != nullptr);
  QCOMPARE(m_window->study()->trainingsCompleted(), 1);
}

void StudyViewTest::cleanupTestCase() {
  m_window.reset();
}

void StudyViewTest::chartsMatchStudy() {
  const kvq::StudyResult& study = *m_window->shownStudy();
  QCOMPARE(trainedDepth(study), kDepth);
  QCOMPARE(static_cast<int>(studyLayers(study).size()), kLayers);
  ChartsPanel* charts = m_window->chartsPanel();
  for (ChartWidget* chart : charts->charts()) {
    if (chart == charts->modelImpact()->chart()) continue;            // drawn by a model run, not by training
    if (chart == charts->modelImpact()->allocationChart()) continue;  // drawn from kvq allocate's file
    if (chart == charts->attentionByLayer()) {                        // the synthetic dump stores no queries
      QVERIFY(study.attention.layers.empty());
      QVERIFY(chart->isPlaceholder());
      continue;
    }
    QVERIFY(!chart->isPlaceholder());
  }

  // (1) rate-distortion: K points per RVQ curve, one per baseline, 2 current points.
  for (const kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
    const QString k = kind == kvq::Kind::Keys ? QStringLiteral("keys") : QStringLiteral("values");
    QLineSeries* rvq = lineNamed(charts->rateDistortion(), QStringLiteral("RVQ ") + k);
    QVERIFY(rvq != nullptr);
    QCOMPARE(rvq->count(), kDepth);
    for (int d = 1; d <= kDepth; ++d) {
      QVERIFY(close(rvq->at(d - 1).x(), kvq::rvqBitsPerChannel(32, d, 8, 32)));
      QVERIFY(close(rvq->at(d - 1).y(), study.total(d, &kind).relativeError()));
    }
    QLineSeries* kivi = lineNamed(charts->rateDistortion(), QStringLiteral("KIVI ") + k);
    QVERIFY(kivi != nullptr);
    QCOMPARE(kivi->count(), static_cast<int>(study.baselineBits.size()));
  }
  // Hover read-out: the point's depth, bits, ratio and error.
  {
    QLineSeries* keys = lineNamed(charts->rateDistortion(), QStringLiteral("RVQ keys"));
    emit keys->hovered(keys->at(1) + QPointF(0.01, 0), true);
    const double bits = kvq::rvqBitsPerChannel(32, 2, 8, 32);
    const QString text = charts->rateDistortion()->readout();
    QVERIFY2(text.contains(QStringLiteral("K = 2")), qPrintable(text));
    QVERIFY2(text.contains(QString::number(bits, 'f', 3)), qPrintable(text));
    QVERIFY2(text.contains(QStringLiteral("ratio %1×").arg(16.0 / bits, 0, 'f', 2)), qPrintable(text));
  }
  QScatterSeries* current = firstScatter(charts->rateDistortion());
  QVERIFY(current != nullptr);
  QCOMPARE(current->count(), 2);
  QVERIFY(close(current->at(0).x(), kvq::rvqBitsPerChannel(32, kDepth, 8, 32)));

  // (2) error by depth of the selected layer (the first).
  const int layer = study.jobs.front().layer;
  for (const kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
    QLineSeries* s = lineNamed(charts->depthError(), kind == kvq::Kind::Keys ? "keys" : "values");
    QVERIFY(s != nullptr);
    QCOMPARE(s->count(), kDepth);
    const kvq::LayerKindResult* job = findJob(study, layer, kind);
    for (int d = 0; d < kDepth; ++d)
      QVERIFY(close(s->at(d).y(), job->byDepth[static_cast<size_t>(d)].relativeError()));
  }

  // (3) per-layer bars at depth K.
  auto* bars = qobject_cast<QBarSeries*>(charts->layerError()->series().value(0));
  QVERIFY(bars != nullptr);
  QCOMPARE(bars->count(), 2);
  for (int k = 0; k < 2; ++k) {
    QBarSet* set = bars->barSets()[k];
    QCOMPARE(set->count(), kLayers);
    for (int l = 0; l < kLayers; ++l) {
      const kvq::LayerKindResult* job = findJob(study, l, k == 0 ? kvq::Kind::Keys : kvq::Kind::Values);
      QVERIFY(close(set->at(l), job->byDepth.back().relativeError()));
    }
  }

  // (4) codebook usage: one curve per stage; a curve has a point per used entry.
  const QList<QAbstractSeries*> usage = charts->codebookUsage()->series();
  QCOMPARE(usage.size(), kDepth);
  const kvq::LayerKindResult* keys = findJob(study, layer, kvq::Kind::Keys);
  for (int s = 0; s < kDepth; ++s) {
    const kvq::StageUsage& u = keys->quantizers.front().usage[static_cast<size_t>(s)];
    auto* line = qobject_cast<QLineSeries*>(usage[s]);
    QCOMPARE(line->count(), 32 - u.deadEntries);
    // Shares sorted descending and summing to 1 over the used entries.
    double sum = 0;
    for (int i = 0; i < line->count(); ++i) {
      sum += line->at(i).y();
      if (i > 0) QVERIFY(line->at(i).y() <= line->at(i - 1).y());
    }
    QVERIFY(std::abs(sum - 1.0) < 1e-9);
    QVERIFY(line->name().contains(QString::number(u.perplexity, 'f', 0)));
  }
}

void StudyViewTest::depthSliderRedrawsWithoutTraining() {
  const int trainings = m_window->study()->trainingsCompleted();
  const kvq::StudyResult& study = *m_window->shownStudy();
  m_window->settingsPanel()->setDepth(2);  // emits depthChanged synchronously
  QCOMPARE(m_window->study()->trainingsCompleted(), trainings);
  QVERIFY(!m_window->jobs()->isPending(job_tag::kTrain));
  ChartsPanel* charts = m_window->chartsPanel();
  QScatterSeries* current = firstScatter(charts->rateDistortion());
  QCOMPARE(current->count(), 2);
  QVERIFY(close(current->at(0).x(), kvq::rvqBitsPerChannel(32, 2, 8, 32)));
  auto* bars = qobject_cast<QBarSeries*>(charts->layerError()->series().value(0));
  const kvq::LayerKindResult* job = findJob(study, 1, kvq::Kind::Values);
  QVERIFY(close(bars->barSets()[1]->at(1), job->byDepth[1].relativeError()));
  QCOMPARE(charts->codebookUsage()->series().size(), 2);
  // Deeper than trained: charts stay at the trained depth; training is offered.
  m_window->settingsPanel()->setDepth(kDepth + 2);
  QCOMPARE(m_window->study()->trainingsCompleted(), trainings);
  QCOMPARE(firstScatter(charts->rateDistortion())->count(), 2);
  QVERIFY(
      close(firstScatter(charts->rateDistortion())->at(0).x(), kvq::rvqBitsPerChannel(32, kDepth, 8, 32)));
  m_window->settingsPanel()->setDepth(kDepth);
}

void StudyViewTest::cacheAnswersRepeatedSettings() {
  SettingsPanel* settings = m_window->settingsPanel();
  const kvq::RvqConfig original = settings->config();
  const StudyPtr before = m_window->shownStudy();
  const int trainings = m_window->study()->trainingsCompleted();
  settings->setCodebookSize(16);
  QVERIFY(m_window->study()->lookup(settings->config(), {0, 1, 2}) == nullptr);
  settings->setConfig(original);
  QVERIFY(m_window->study()->lookup(settings->config(), {0, 1, 2}) == before);
  m_window->train();  // answered by the cache: no job
  QVERIFY(!m_window->jobs()->isPending(job_tag::kTrain));
  QCOMPARE(m_window->study()->trainingsCompleted(), trainings);
  QCOMPARE(m_window->shownStudy(), before);
}

void StudyViewTest::channelChartMarksGroups() {
  m_window->datasetPanel()->select(1, kvq::Kind::Keys, -1);
  ChannelChart* chart = m_window->chartsPanel()->channels();
  const kvq::LayerStats& stats = m_window->session()->stats[1];
  QLineSeries* mean = lineNamed(chart, QStringLiteral("mean |x|"));
  QVERIFY(mean != nullptr);
  QCOMPARE(mean->count(), 32);
  for (int c = 0; c < 32; ++c) QCOMPARE(mean->at(c).y(), stats.keys.channelMeanAbs[static_cast<size_t>(c)]);
  // g = 8 of D = 32: 4 groups, each marked by one scatter series of 8 channels;
  // strided keys: group j holds channels j, j+4, j+8, ...
  int scatters = 0;
  for (QAbstractSeries* s : chart->series()) {
    auto* scatter = qobject_cast<QScatterSeries*>(s);
    if (scatter == nullptr) continue;
    QCOMPARE(scatter->count(), 8);
    QCOMPARE(static_cast<int>(scatter->at(1).x()) - static_cast<int>(scatter->at(0).x()), 4);
    ++scatters;
  }
  QCOMPARE(scatters, 4);
  // One head: read on the jobs.
  m_window->datasetPanel()->select(1, kvq::Kind::Values, 1);
  QVERIFY(waitUntil([&] {
    QLineSeries* m = lineNamed(chart, QStringLiteral("mean |x|"));
    return m != nullptr && chart->chart()->title().contains(QStringLiteral("head 1"));
  }));
  QCOMPARE(lineNamed(chart, QStringLiteral("mean |x|"))->count(), 32);
  m_window->datasetPanel()->select(0, kvq::Kind::Keys, -1);
}

void StudyViewTest::exportsEveryFormat() {
  QVERIFY(m_window->exportCurrentChart(m_dir.filePath(QStringLiteral("rd.png"))));
  QImage png(m_dir.filePath(QStringLiteral("rd.png")));
  QVERIFY(!png.isNull());
  QCOMPARE(png.size(), QSize(2000, 1240));
  QVERIFY(m_window->exportCurrentChart(m_dir.filePath(QStringLiteral("rd.svg"))));
  QFile svg(m_dir.filePath(QStringLiteral("rd.svg")));
  QVERIFY(svg.open(QIODevice::ReadOnly));
  const QByteArray svgText = svg.readAll();
  QVERIFY(svgText.contains("<svg"));
  QVERIFY(svgText.contains("</svg>"));
  QVERIFY(m_window->exportCurrentChart(m_dir.filePath(QStringLiteral("rd.pdf"))));
  QFile pdf(m_dir.filePath(QStringLiteral("rd.pdf")));
  QVERIFY(pdf.open(QIODevice::ReadOnly));
  const QByteArray pdfBytes = pdf.readAll();
  QVERIFY(pdfBytes.startsWith("%PDF-"));
  QVERIFY(pdfBytes.trimmed().endsWith("%%EOF"));

  const QString folder = m_dir.filePath(QStringLiteral("charts"));
  QVERIFY(QDir().mkpath(folder));
  QVERIFY(m_window->exportAllCharts(folder));
  for (ChartWidget* chart : m_window->chartsPanel()->charts()) {
    for (const char* suffix : {"png", "svg", "pdf"}) {
      QVERIFY(QFileInfo(QDir(folder).filePath(chart->fileStem() + "." + suffix)).size() > 0);
    }
    // Charts of tabs never shown are drawn too: the image has more than a background (the
    // Model impact chart stays a placeholder until a model runs: test_model_impact covers it).
    if (chart->isPlaceholder()) continue;
    const QImage image(QDir(folder).filePath(chart->fileStem() + ".png"));
    QCOMPARE(image.size(), QSize(2000, 1240));
    int inked = 0;
    for (int y = 0; y < image.height(); y += 4) {
      for (int x = 0; x < image.width(); x += 4) {
        if (qGray(image.pixel(x, y)) < 160) ++inked;
      }
    }
    QVERIFY2(inked > 500, qPrintable(chart->fileStem()));
  }

  const kvq::StudyResult& study = *m_window->shownStudy();
  // Metrics: CSV rows and the JSON document read back.
  const QString csvPath = m_dir.filePath(QStringLiteral("metrics.csv"));
  QVERIFY(m_window->exportMetrics(csvPath));
  QFile csv(csvPath);
  QVERIFY(csv.open(QIODevice::ReadOnly));
  const QList<QByteArray> lines = csv.readAll().trimmed().split('\n');
  QVERIFY(lines.front().startsWith("layer,kind,head,method"));
  int rvqRows = 0;
  for (const QByteArray& line : lines) {
    if (line.contains(",rvq,")) ++rvqRows;
  }
  QVERIFY(rvqRows >= static_cast<int>(study.jobs.size()) * kDepth);
  const QString jsonPath = m_dir.filePath(QStringLiteral("metrics.json"));
  QVERIFY(m_window->exportMetrics(jsonPath));
  QFile jsonFile(jsonPath);
  QVERIFY(jsonFile.open(QIODevice::ReadOnly));
  const nlohmann::json json = nlohmann::json::parse(jsonFile.readAll().toStdString());
  QCOMPARE(json["jobs"].size(), study.jobs.size());

  // Codebooks: the HDF5 file read back equals the trained codebooks; npz is a zip.
  const QString h5 = m_dir.filePath(QStringLiteral("codebooks.h5"));
  m_window->exportCodebooks(h5);
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::exportFinished));
  const kvq::CodebookFile file = kvq::readCodebookFile(h5.toStdString());
  QCOMPARE(file.sets.size(), study.jobs.size());
  QCOMPARE(file.sets[0].codebooks[0].data, study.jobs[0].quantizers[0].codebooks.data);
  QCOMPARE(file.config.codebookSize, 32);
  const QString npz = m_dir.filePath(QStringLiteral("codebooks.npz"));
  m_window->exportCodebooks(npz);
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::exportFinished));
  QFile npzFile(npz);
  QVERIFY(npzFile.open(QIODevice::ReadOnly));
  const QByteArray zip = npzFile.readAll();
  QVERIFY(zip.startsWith("PK"));
  QVERIFY(zip.contains("L0_keys_codebooks.npy"));
  QVERIFY(m_presenter->errors.isEmpty());
}

// Two exports submitted while a long job holds the worker both write their files
// and both report success (one must not replace the other in the queue); an export
// cancelled while it writes still reports the file it wrote.
void StudyViewTest::queuedExportsAllWrite() {
  m_presenter->errors.clear();
  JobQueue* jobs = m_window->jobs();
  QList<QPair<QString, bool>> finished;
  const auto record =
      connect(m_window.get(), &MainWindow::exportFinished, this, [&](const QString& path, bool ok) {
        finished.append({path, ok});
      });
  // Shared with the job, which may outlive a failed check.
  const auto started = std::make_shared<std::atomic<bool>>(false);
  const auto release = std::make_shared<std::atomic<bool>>(false);
  QMetaObject::Connection cancel;
  // Also on a failed check: nothing may outlive this function's locals.
  const auto cleanup = qScopeGuard([&] {
    *release = true;
    disconnect(record);
    disconnect(cancel);
  });
  jobs->submit(QStringLiteral("long job"), QStringLiteral("Blocking"),
               [started, release](const kvq::TaskControl& control) -> std::function<void()> {
                 *started = true;
                 // Also ends on cancel: a failed check must not leave the worker stuck.
                 while (!release->load() && !control.cancelled())
                   std::this_thread::sleep_for(std::chrono::milliseconds(1));
                 return {};
               });
  QVERIFY(waitUntil([&] { return started->load(); }));
  const QString h5 = m_dir.filePath(QStringLiteral("queued.h5"));
  const QString npz = m_dir.filePath(QStringLiteral("queued.npz"));
  m_window->exportCodebooks(h5);
  m_window->exportCodebooks(npz);
  QCoreApplication::processEvents();
  QVERIFY(finished.isEmpty());  // both still queued behind the long job
  *release = true;
  QVERIFY(waitUntil([&] { return finished.size() == 2; }));
  QCOMPARE(finished[0], qMakePair(h5, true));
  QCOMPARE(finished[1], qMakePair(npz, true));
  const kvq::StudyResult& study = *m_window->shownStudy();
  const kvq::CodebookFile file = kvq::readCodebookFile(h5.toStdString());
  QCOMPARE(file.sets.size(), study.jobs.size());
  QCOMPARE(file.sets[0].codebooks[0].data, study.jobs[0].quantizers[0].codebooks.data);
  QFile npzFile(npz);
  QVERIFY(npzFile.open(QIODevice::ReadOnly));
  QVERIFY(npzFile.readAll().startsWith("PK"));
  QCOMPARE(m_window->statusBar()->currentMessage(),
           QStringLiteral("Saved %1").arg(QDir::toNativeSeparators(npz)));

  // Cancel (Esc) once the export runs: writing ignores the flag, and a written file is
  // reported as saved.
  finished.clear();
  cancel = connect(jobs, &JobQueue::taskStarted, this, [jobs](const QString& tag) {
    if (job_tag::isExport(tag)) jobs->cancelAll();
  });
  const QString cancelled = m_dir.filePath(QStringLiteral("cancelled.h5"));
  m_window->exportCodebooks(cancelled);
  QVERIFY(waitUntil([&] { return finished.size() == 1; }));
  QCOMPARE(finished[0], qMakePair(cancelled, true));
  QCOMPARE(kvq::readCodebookFile(cancelled.toStdString()).sets.size(), study.jobs.size());
  QCOMPARE(m_window->statusBar()->currentMessage(),
           QStringLiteral("Saved %1").arg(QDir::toNativeSeparators(cancelled)));
  QVERIFY2(m_presenter->errors.isEmpty(), qPrintable(m_presenter->errors.join('\n')));
}

void StudyViewTest::failedExportKeepsExistingFile() {
  m_presenter->errors.clear();
  // Unknown suffix: refused with a dialog.
  QVERIFY(!m_window->exportMetrics(m_dir.filePath(QStringLiteral("metrics.txt"))));
  QCOMPARE(m_presenter->errors.size(), 1);
  QVERIFY(m_presenter->errors.front().contains(QStringLiteral("metrics.txt")));
  // A folder that does not exist: refused, nothing created.
  const QString missing = m_dir.filePath(QStringLiteral("no/such/dir/rd.png"));
  QVERIFY(!m_window->exportCurrentChart(missing));
  QCOMPARE(m_presenter->errors.size(), 2);
  QVERIFY(!QFileInfo::exists(missing));
  // Codebooks refused (error on the worker thread reaches the dialog); the existing
  // file of that name keeps its contents.
  const QString keep = m_dir.filePath(QStringLiteral("keep.txt"));
  {
    QFile f(keep);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("old contents");
  }
  m_window->exportCodebooks(keep);
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::exportFinished));
  QCOMPARE(m_presenter->errors.size(), 3);
  QVERIFY(m_presenter->errors.back().contains(QStringLiteral("keep.txt")));
  m_window->exportCodebooks(m_dir.filePath(QStringLiteral("no/such/dir/cb.h5")));
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::exportFinished));
  QCOMPARE(m_presenter->errors.size(), 4);
  QFile f(keep);
  QVERIFY(f.open(QIODevice::ReadOnly));
  QCOMPARE(f.readAll(), QByteArray("old contents"));
}

void StudyViewTest::cancelledTrainingKeepsResult() {
  m_presenter->errors.clear();
  SettingsPanel* settings = m_window->settingsPanel();
  const kvq::RvqConfig original = settings->config();
  const StudyPtr before = m_window->shownStudy();
  const int trainings = m_window->study()->trainingsCompleted();
  kvq::RvqConfig slow = original;
  slow.emaSteps = 100000;  // minutes of work: it will be cancelled long before
  settings->setConfig(slow);
  JobQueue::Outcome outcome = JobQueue::Outcome::Done;
  bool progressed = false;
  QObject scope;  // the connections below capture locals: they must end with this function
  connect(m_window->jobs(), &JobQueue::taskProgress, &scope, [&] { progressed = true; });
  connect(m_window->jobs(), &JobQueue::taskFinished, &scope,
          [&](const QString& tag, quint64, JobQueue::Outcome o) {
            if (tag == job_tag::kTrain) outcome = o;
          });
  m_window->train();
  QVERIFY(m_window->jobs()->isPending(job_tag::kTrain));
  QVERIFY(waitUntil([&] { return progressed; }));
  m_window->jobs()->cancel(job_tag::kTrain);
  QVERIFY(waitUntil([&] { return !m_window->jobs()->isPending(job_tag::kTrain); }));
  QCOMPARE(outcome, JobQueue::Outcome::Cancelled);
  QVERIFY(m_presenter->errors.isEmpty());
  QCOMPARE(m_window->shownStudy(), before);
  QCOMPARE(m_window->study()->trainingsCompleted(), trainings);
  settings->setConfig(original);
}

void StudyViewTest::invalidSettingsShowCoreMessage() {
  m_presenter->errors.clear();
  SettingsPanel* settings = m_window->settingsPanel();
  const kvq::RvqConfig original = settings->config();
  const StudyPtr before = m_window->shownStudy();
  kvq::RvqConfig bad = original;
  bad.codebookSize = 1024;
  bad.trainSample = 100;  // fewer than C: core refuses
  settings->setConfig(bad);
  m_window->train();
  QVERIFY(waitUntil([&] { return !m_window->jobs()->isPending(job_tag::kTrain); }));
  QCOMPARE(m_presenter->errors.size(), 1);
  // Core names the field (train_sample); the dialog names the control.
  QVERIFY2(m_presenter->errors.front().endsWith(
               QStringLiteral(": Sample size: must be at least the codebook size (1024)")),
           qPrintable(m_presenter->errors.front()));
  QCOMPARE(m_window->shownStudy(), before);
  settings->setConfig(original);
}

QTEST_MAIN(StudyViewTest)
#include "test_study_view.moc"
