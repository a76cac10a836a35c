// Sliders that answer at once: after one training the background trains the
// neighbouring codebook sizes at full depth, so moving the codebook-size or depth
// slider redraws the charts from a real result with no training request; a size
// still training says so and lands; auto-train is progressive (preview, then the
// full recipe) and coalesced to the newest request. A watchdog runs through every
// test: the UI thread is never busy for 50 ms or more at a stretch, nor blocked for
// long (ui_test_util.h says how it is measured).
#include <QAbstractAxis>
#include <QChart>
#include <QElapsedTimer>
#include <QLineSeries>
#include <QPointer>
#include <QScatterSeries>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <memory>

#include "background_trainer.h"
#include "charts_panel.h"
#include "depth_error_chart.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/study/work_estimate.h"
#include "main_window.h"
#include "message_presenter.h"
#include "rate_distortion_chart.h"
#include "settings_panel.h"
#include "study_queries.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;
using kvq::ui::test::waitUntil;

class SlidersTest : public QObject, kvq::ui::test::WindowFixture {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void backgroundTrainsNeighbouringSizes();
  void sliderMoveShowsBackgroundResultWithoutTraining();
  void sizeStillTrainingSaysSoAndLands();
  void autoTrainIsProgressiveAndCoalesced();
  void autoTrainDefaultFollowsEstimate();
  void uiThreadNeverStalled();

 private:
  kvq::RvqConfig config() const { return m_window->settingsPanel()->config(); }
  QList<int> layers() const { return {0, 1, 2}; }
  // The rate-distortion chart's marker of the current setting (keys, values).
  QScatterSeries* currentPoints() const;
  // Edits settings as the user would: the panel's controls, then its signal.
  void edit(const kvq::RvqConfig& c);
  // Lets the event loop run after a move, as between two moves of a real user (the
  // watchdog would otherwise count several moves in a row as one stall).
  static void settle();

  kvq::ui::test::UiWatchdog m_watchdog;
  static constexpr int kDepth = 4;
  static constexpr int kSize = 32;
  // Sample: 768 training tokens x 2 heads x 4 groups = 6144 vectors, subsampled to 4000:
  // the plan reaches up to C = 2048.
  static constexpr int kSample = 4000;
};

namespace {

bool close(double a, double b) {
  return std::abs(a - b) <= 1e-12 * std::max(1.0, std::abs(b));
}

}  // namespace

QScatterSeries* SlidersTest::currentPoints() const {
  for (QAbstractSeries* s : m_window->chartsPanel()->rateDistortion()->series()) {
    if (auto* scatter = qobject_cast<QScatterSeries*>(s)) return scatter;
  }
  return nullptr;
}

void SlidersTest::edit(const kvq::RvqConfig& c) {
  SettingsPanel* settings = m_window->settingsPanel();
  settings->setConfig(c);
  emit settings->configEdited();
}

void SlidersTest::settle() {
  // What a user's next move waits for anyway: the events (the repaint) of this one.
  QTest::qWait(20);
}

void SlidersTest::initTestCase() {
  kvq::ui::test::initTestApplication(QStringLiteral("test_sliders"));
  QVERIFY(m_dir.isValid());
  const QString path = synthDump(QStringLiteral("sliders.h5"), 3, 32, 1024, 9);
  createWindow();
  m_window->show();  // offscreen: painting is part of what the watchdog measures
  QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
  QVERIFY(openAndWait(path));

  SettingsPanel* settings = m_window->settingsPanel();
  settings->setAutoTrain(false);  // the explicit Train first; auto-train has its own test
  kvq::RvqConfig c = kvq::presetConfig("fast");
  c.codebookSize = kSize;
  c.depth = kDepth;
  c.groupSize = 8;
  c.trainSample = kSample;
  c.kmeansIterations = 3;
  c.emaSteps = 5;
  c.batchSize = 1024;
  settings->setConfig(c);
  const QString trained = trainAndWait();
  QVERIFY2(trained.isEmpty(), qPrintable(trained));
  QCOMPARE(m_window->study()->trainingsCompleted(), 1);
  QCOMPARE(m_window->study()->trainRequests(), 1);
  // From the first charts on, painted (first-use costs such as loading fonts are not
  // part of it), through every test: the background plan runs from here.
  m_window->repaint();
  QCoreApplication::processEvents();
  m_watchdog.start();
}

void SlidersTest::cleanupTestCase() {
  m_window.reset();
}

void SlidersTest::backgroundTrainsNeighbouringSizes() {
  BackgroundTrainer* background = m_window->study()->background();
  QVERIFY(waitUntil([&] { return background->isIdle(); }, 300000));
  QVERIFY2(m_presenter->errors.isEmpty(), qPrintable(m_presenter->errors.join('\n')));
  // The trained size at full depth, then every size down to 16 and up to the sample.
  const QList<int> expected{16, 32, 64, 128, 256, 512, 1024, 2048};
  QCOMPARE(background->sizesTrained(), static_cast<int>(expected.size()));
  for (int size : expected) {
    kvq::RvqConfig c = config();
    c.codebookSize = size;
    c.depth = SettingsPanel::kMaxDepth;
    const StudyPtr study = m_window->study()->lookup(c, layers());
    QVERIFY2(study != nullptr, qPrintable(QString::number(size)));
    QCOMPARE(trainedDepth(*study), SettingsPanel::kMaxDepth);
    QCOMPARE(study->config.codebookSize, size);
  }
  // 4096 > the 4000 vectors of the sample: not planned, and asking says why.
  kvq::RvqConfig tooLarge = config();
  tooLarge.codebookSize = 4096;
  QVERIFY(!background->request(tooLarge, layers()));
  QCOMPARE(background->status(tooLarge, layers()).state, BackgroundTrainer::State::Failed);
  QVERIFY(background->status(tooLarge, layers()).message.contains(QStringLiteral("4000")));
}

void SlidersTest::sliderMoveShowsBackgroundResultWithoutTraining() {
  const int requests = m_window->study()->trainRequests();
  SettingsPanel* settings = m_window->settingsPanel();
  ChartsPanel* charts = m_window->chartsPanel();
  charts->setCurrentWidget(charts->rateDistortion());
  // A move redraws the shown chart by changing points: the same series and axes.
  QList<QPointer<QObject>> drawn;
  for (QAbstractSeries* s : charts->rateDistortion()->series()) drawn << s;
  for (QAbstractAxis* a : charts->rateDistortion()->chart()->axes()) drawn << a;
  QCOMPARE(drawn.size(), 2 * 2 + 1 + 2);  // RVQ and KIVI of keys and values, the ring, two axes
  for (const int size : {64, 16, 2048, kSize}) {
    QElapsedTimer clock;
    clock.start();
    settings->setCodebookSize(size);  // the slider: configEdited, handled synchronously
    const qint64 ms = clock.elapsed();
    qInfo("C = %d: charts redrawn %lld ms after the slider moved", size, static_cast<long long>(ms));
    QVERIFY(!m_window->jobs()->isPending(job_tag::kTrain));
    QVERIFY(!m_window->jobs()->isPending(job_tag::kPreview));
    QCOMPARE(m_window->study()->trainRequests(), requests);
    QVERIFY2(m_window->chartsNotice().isEmpty(), qPrintable(m_window->chartsNotice()));
    const StudyPtr shown = m_window->shownStudy();
    QCOMPARE(shown->config.codebookSize, size);
    QScatterSeries* current = currentPoints();
    QVERIFY(current != nullptr);
    QCOMPARE(current->count(), 2);
    QVERIFY(close(current->at(0).x(), kvq::rvqBitsPerChannel(size, kDepth, 8, 32)));
    const kvq::Kind keys = kvq::Kind::Keys;
    QVERIFY(close(current->at(0).y(), std::max(shown->total(kDepth, &keys).relativeError(), 1e-12)));
    QList<QObject*> now;
    for (QAbstractSeries* s : charts->rateDistortion()->series()) now << s;
    for (QAbstractAxis* a : charts->rateDistortion()->chart()->axes()) now << a;
    QCOMPARE(now.size(), drawn.size());
    for (const QPointer<QObject>& object : drawn) QVERIFY(object != nullptr && now.contains(object.data()));
    // The reused ring's hover answers for this size, not the one it was created for.
    emit current->hovered(current->at(0), true);
    const QString bits = QString::number(kvq::rvqBitsPerChannel(size, kDepth, 8, 32), 'f', 3);
    QVERIFY2(charts->rateDistortion()->readout().contains(bits + QStringLiteral(" bits/channel")),
             qPrintable(charts->rateDistortion()->readout()));
    // The hidden study charts wait for their tab (or an accessor) to be drawn.
    QCOMPARE(charts->staleCharts(), 4);
    if (size == 2048) {  // ... and a hidden chart is drawn when its tab is shown
      auto* usage = qobject_cast<ChartWidget*>(charts->widget(4));
      QVERIFY(!usage->chart()->title().contains(QStringLiteral("C = 2048")));
      settle();
      charts->setCurrentIndex(4);  // a click on the tab: an event of its own
      QCOMPARE(charts->staleCharts(), 3);
      QVERIFY2(usage->chart()->title().contains(QStringLiteral("C = 2048")),
               qPrintable(usage->chart()->title()));
      settle();
      charts->setCurrentIndex(0);
    }
    settle();
  }
  // Depth beyond the first training's K = 4: the full-depth result answers it.
  settings->setDepth(12);
  settle();
  QCOMPARE(m_window->study()->trainRequests(), requests);
  QVERIFY(close(currentPoints()->at(0).x(), kvq::rvqBitsPerChannel(kSize, 12, 8, 32)));
  QCOMPARE(trainedDepth(*m_window->shownStudy()), SettingsPanel::kMaxDepth);
  // The error-by-depth chart: every trained depth, the current one marked.
  QScatterSeries* marked = nullptr;
  for (QAbstractSeries* s : m_window->chartsPanel()->depthError()->series()) {
    if (auto* scatter = qobject_cast<QScatterSeries*>(s)) marked = scatter;
  }
  QVERIFY(marked != nullptr && marked->count() > 0);
  QCOMPARE(marked->at(0).x(), 12.0);
  settings->setDepth(kDepth);
  settle();
  QVERIFY(m_presenter->errors.isEmpty());
}

void SlidersTest::sizeStillTrainingSaysSoAndLands() {
  // Another seed: a new base, so nothing around it is trained yet.
  kvq::RvqConfig c = config();
  c.seed = 77;
  edit(c);
  QVERIFY(m_window->chartsNotice().contains(QStringLiteral("Train (Ctrl+T)")));
  const int requests = m_window->study()->trainRequests();
  m_window->train();
  QCOMPARE(m_window->study()->trainRequests(), requests + 1);
  QVERIFY(waitUntil([&] { return m_window->study()->lookup(config(), layers()) != nullptr; }, 300000));
  // Straight to the largest size: the plan starts with C = 32 at full depth; 2048 goes
  // first now and is training. The notice says so; the charts show it once it lands.
  m_window->settingsPanel()->setCodebookSize(2048);
  QCOMPARE(m_window->study()->trainRequests(), requests + 1);
  QVERIFY2(m_window->chartsNotice().contains(QStringLiteral("C = 2048")) &&
               m_window->chartsNotice().contains(QStringLiteral("background")),
           qPrintable(m_window->chartsNotice()));
  QVERIFY(m_window->chartsPanel()->notice() == m_window->chartsNotice());
  QVERIFY(waitUntil([&] { return m_window->shownStudy()->config.codebookSize == 2048; }, 300000));
  QCOMPARE(m_window->shownStudy()->config.seed, uint64_t{77});
  QVERIFY(m_window->chartsNotice().isEmpty());
  QVERIFY(m_window->chartsPanel()->notice().isEmpty());
  QVERIFY(close(currentPoints()->at(0).x(), kvq::rvqBitsPerChannel(2048, kDepth, 8, 32)));
  QCOMPARE(m_window->study()->trainRequests(), requests + 1);
  m_window->settingsPanel()->setCodebookSize(kSize);
}

void SlidersTest::autoTrainIsProgressiveAndCoalesced() {
  StudyController* study = m_window->study();
  m_window->study()->background()->cancel();
  SettingsPanel* settings = m_window->settingsPanel();
  settings->setAutoTrain(true);
  struct Event {
    bool preview;
    uint64_t seed;
    int emaSteps;
  };
  QList<Event> events;
  QObject scope;
  connect(study, &StudyController::previewReady, &scope, [&](const StudyPtr& s) {
    events.append({true, s->config.seed, s->config.emaSteps});
  });
  connect(study, &StudyController::resultReady, &scope, [&](const StudyPtr& s) {
    events.append({false, s->config.seed, s->config.emaSteps});
  });
  const int completed = study->trainingsCompleted();
  // A recipe whose preview is much cheaper (many EMA steps), edited three times at once.
  kvq::RvqConfig c = config();
  c.emaSteps = 200;
  c.kmeansIterations = 10;
  for (const uint64_t seed : {101, 102, 103}) {
    c.seed = seed;
    edit(c);
    QVERIFY(study->isTrainingFor(c, layers()));
  }
  // (Three edits with no event in between: no result can arrive before the last.)
  QVERIFY(waitUntil([&] { return !events.isEmpty() && !events.back().preview; }, 300000));
  // Only the newest request delivered: its preview (the quick recipe), then its full recipe.
  QCOMPARE(events.size(), 2);
  QVERIFY(events[0].preview);
  QCOMPARE(events[0].seed, uint64_t{103});
  QCOMPARE(events[0].emaSteps, kvq::previewConfig(c).emaSteps);
  QVERIFY(!events[1].preview);
  QCOMPARE(events[1].seed, uint64_t{103});
  QCOMPARE(events[1].emaSteps, 200);
  QCOMPARE(study->trainingsCompleted(), completed + 1);
  QCOMPARE(m_window->shownStudy()->config.seed, uint64_t{103});
  QVERIFY(m_window->chartsNotice().isEmpty());
  QVERIFY2(m_presenter->errors.isEmpty(), qPrintable(m_presenter->errors.join('\n')));
  study->background()->cancel();
  settings->setAutoTrain(false);
}

void SlidersTest::autoTrainDefaultFollowsEstimate() {
  SettingsPanel panel;
  QVERIFY(!panel.autoTrain());  // unknown: off
  panel.setTrainingEstimate(1.5);
  QVERIFY(panel.autoTrain());
  panel.setTrainingEstimate(2.5);
  QVERIFY(!panel.autoTrain());
  panel.setAutoTrain(true);  // the user's choice wins from now on
  panel.setTrainingEstimate(60);
  QVERIFY(panel.autoTrain());
  // The controller's estimate is the study's work over the measured throughput.
  StudyController* study = m_window->study();
  QVERIFY(study->throughput() > 0);
  const kvq::RvqConfig c = config();
  const kvq::DumpInfo& info = m_window->session()->info();
  const kvq::TokenSplit split = kvq::splitTokens(info.tokens, info.sequenceStarts, c.heldOutFraction);
  const double work = kvq::studyWork(c, info, 3, 2, split.trainTokens, split.heldOutTokens);
  QVERIFY(close(study->estimateSeconds(c, layers()), work / study->throughput()));
}

void SlidersTest::uiThreadNeverStalled() {
  m_watchdog.stop();
  qInfo(
      "UI thread through these tests: longest busy stretch %lld ms, longest stall %lld ms (wall-clock gap "
      "with run-queue waits: %lld ms)",
      static_cast<long long>(m_watchdog.worstBusyMs()), static_cast<long long>(m_watchdog.worstStallMs()),
      static_cast<long long>(m_watchdog.worstGapMs()));
  for (const QString& stall : m_watchdog.stalls()) qInfo("stall: %s", qPrintable(stall));
  QVERIFY2(m_watchdog.worstBusyMs() < 50, "the UI thread was busy for 50 ms or more at a stretch");
  QVERIFY2(m_watchdog.worstStallMs() < 200, "the UI thread was blocked for 200 ms or more");
}

QTEST_MAIN(SlidersTest)
#include "test_sliders.moc"
