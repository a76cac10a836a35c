// Small pieces of the GUI with hand-worked expectations: time-left text, nearest
// hover point, layer lists, presets vs custom, the study cache key.
#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QLineSeries>
#include <QSignalSpy>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTest>

#include <atomic>
#include <thread>

#include "chart_widget.h"
#include "codebook_usage_chart.h"
#include "job_queue.h"
#include "kvq/rvq/backend_registry.h"
#include "settings_panel.h"
#include "study_controller.h"
#include "task_progress_widget.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;

class WidgetsTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { kvq::ui::test::initTestApplication(QStringLiteral("test_widgets")); }
  void timeLeft();
  void nearestPoint();
  void layerList();
  void presetThenEditIsCustom();
  void groupSizesDivideHeadDim();
  void cacheKeyIgnoresDepthOnly();
  void beamAndHeldOutAreSettings();
  void centredAndQueryAwareAreSettings();
  void replacedSessionIsReleasedOnWorker();
  void unavailableBackendKeepsPrevious();
  void largeCodebookUsageIsDecimated();
};

void WidgetsTest::timeLeft() {
  // 10 s for 25 %: 30 s left.
  QCOMPARE(TaskProgressWidget::timeLeftText(10.0, 0.25), QStringLiteral("30 s left"));
  // 30 s for 20 %: 120 s = 2 min 00 s.
  QCOMPARE(TaskProgressWidget::timeLeftText(30.0, 0.2), QStringLiteral("2 min 00 s left"));
  QCOMPARE(TaskProgressWidget::timeLeftText(65.0, 0.5), QStringLiteral("1 min 05 s left"));
  // Too early, or done: no estimate.
  QVERIFY(TaskProgressWidget::timeLeftText(0.1, 0.5).isEmpty());
  QVERIFY(TaskProgressWidget::timeLeftText(5.0, 0.01).isEmpty());
  QVERIFY(TaskProgressWidget::timeLeftText(5.0, 1.0).isEmpty());
}

void WidgetsTest::nearestPoint() {
  QLineSeries s;
  s.append(0, 0);
  s.append(1, 10);
  s.append(2, 0);
  // Coordinates are scaled by the ranges (x 2, y 10): (0.9, 6) is nearest (1, 10).
  QCOMPARE(nearestPointIndex(&s, QPointF(0.9, 6)), 1);
  QCOMPARE(nearestPointIndex(&s, QPointF(1.8, 1)), 2);
  QLineSeries empty;
  QCOMPARE(nearestPointIndex(&empty, QPointF(0, 0)), -1);
}

void WidgetsTest::layerList() {
  SettingsPanel panel;
  const QList<int> present{0, 4, 8, 12, 16};
  QCOMPARE(panel.layers(present), present);  // empty = all
  panel.setLayersText(QStringLiteral("0-8, 16, 99, x"));
  QCOMPARE(panel.layers(present), (QList<int>{0, 4, 8, 16}));
  panel.setLayersText(QStringLiteral("12,4,4"));
  QCOMPARE(panel.layers(present), (QList<int>{4, 12}));
  panel.setLayersText(QStringLiteral("all"));
  QCOMPARE(panel.layers(present), present);
}

void WidgetsTest::presetThenEditIsCustom() {
  SettingsPanel panel;
  panel.applyPreset(QStringLiteral("fast"));
  const kvq::RvqConfig fast = kvq::presetConfig("fast");
  kvq::RvqConfig c = panel.config();
  QCOMPARE(c.preset, std::string("fast"));
  QCOMPARE(c.trainSample, fast.trainSample);
  QCOMPARE(c.emaSteps, fast.emaSteps);
  QCOMPARE(c.batchSize, fast.batchSize);  // hidden setting carried by the preset
  QSignalSpy edited(&panel, &SettingsPanel::configEdited);
  QSignalSpy depth(&panel, &SettingsPanel::depthChanged);
  panel.setCodebookSize(64);
  QCOMPARE(edited.count(), 1);
  c = panel.config();
  QCOMPARE(c.preset, std::string("custom"));
  QCOMPARE(c.codebookSize, 64);
  QCOMPARE(c.batchSize, fast.batchSize);  // still the preset's
  panel.setDepth(3);
  QCOMPARE(depth.count(), 1);
  QCOMPARE(edited.count(), 1);  // depth is not a training setting
  QCOMPARE(panel.config().depth, 3);
}

void WidgetsTest::groupSizesDivideHeadDim() {
  SettingsPanel panel;
  kvq::RvqConfig c = panel.config();
  c.groupSize = 32;
  panel.setConfig(c);
  panel.setHeadDim(48);  // divisors 1 2 3 4 6 8 12 16 24 48: 32 is not one; 24 is the largest below
  QCOMPARE(panel.config().groupSize, 24);
  panel.setHeadDim(64);
  QCOMPARE(panel.config().groupSize, 16);  // 24 does not divide 64
}

void WidgetsTest::cacheKeyIgnoresDepthOnly() {
  kvq::RvqConfig a = kvq::presetConfig("paper");
  kvq::RvqConfig b = a;
  b.depth = 3;
  b.preset = "custom";
  QCOMPARE(StudyController::cacheKey("d.h5", a, {0, 1}), StudyController::cacheKey("d.h5", b, {0, 1}));
  b.seed = 1;
  QVERIFY(StudyController::cacheKey("d.h5", a, {0, 1}) != StudyController::cacheKey("d.h5", b, {0, 1}));
  QVERIFY(StudyController::cacheKey("d.h5", a, {0, 1}) != StudyController::cacheKey("d.h5", a, {0}));
  QVERIFY(StudyController::cacheKey("d.h5", a, {0, 1}) != StudyController::cacheKey("e.h5", a, {0, 1}));
  // Beam width and held-out fraction change what is trained and measured.
  kvq::RvqConfig beam = a;
  beam.beamWidth = 4;
  QVERIFY(StudyController::cacheKey("d.h5", a, {0, 1}) != StudyController::cacheKey("d.h5", beam, {0, 1}));
  kvq::RvqConfig heldOut = a;
  heldOut.heldOutFraction = 0.1;
  QVERIFY(StudyController::cacheKey("d.h5", a, {0, 1}) != StudyController::cacheKey("d.h5", heldOut, {0, 1}));
}

// The panel's beam width and held-out fraction reach the config, mark the preset
// custom, survive a QSettings round trip, and the quality preset loads its beam.
void WidgetsTest::beamAndHeldOutAreSettings() {
  SettingsPanel panel;
  panel.applyPreset(QStringLiteral("paper"));
  QCOMPARE(panel.config().beamWidth, kvq::presetConfig("paper").beamWidth);
  QCOMPARE(panel.config().heldOutFraction, kvq::presetConfig("paper").heldOutFraction);
  panel.applyPreset(QStringLiteral("quality"));
  QCOMPARE(panel.config().beamWidth, kvq::presetConfig("quality").beamWidth);
  // Edited from "paper": a restored custom setting takes its hidden settings from it.
  panel.applyPreset(QStringLiteral("paper"));

  auto* beam = panel.findChild<QSpinBox*>(QStringLiteral("beamWidth"));
  auto* heldOut = panel.findChild<QDoubleSpinBox*>(QStringLiteral("heldOutFraction"));
  QVERIFY(beam != nullptr && heldOut != nullptr);
  QVERIFY(!beam->toolTip().isEmpty() && !heldOut->toolTip().isEmpty());
  QSignalSpy edited(&panel, &SettingsPanel::configEdited);
  beam->setValue(3);
  QCOMPARE(edited.count(), 1);
  QCOMPARE(panel.config().preset, std::string("custom"));
  heldOut->setValue(0.4);
  QCOMPARE(edited.count(), 2);
  QCOMPARE(panel.config().beamWidth, 3);
  QCOMPARE(panel.config().heldOutFraction, 0.4);
  heldOut->setValue(0.99);  // validateConfig needs < 1; the panel keeps training tokens
  QVERIFY(panel.config().heldOutFraction < 1.0);
  heldOut->setValue(0.0);  // 0 = evaluate on the training tokens: allowed
  QCOMPARE(panel.config().heldOutFraction, 0.0);
  heldOut->setValue(0.125);

  panel.saveSettings();
  SettingsPanel restored;
  restored.restoreSettings();
  QCOMPARE(restored.config().beamWidth, 3);
  QCOMPARE(restored.config().heldOutFraction, 0.125);
  QCOMPARE(StudyController::cacheKey("d.h5", restored.config(), {0}),
           StudyController::cacheKey("d.h5", panel.config(), {0}));
}

// Centred channels and query-aware keys: the model-loss preset ticks both, unticking one makes
// the setting custom and reaches the config, a QSettings round trip keeps it, and it is part of
// the results' cache key.
void WidgetsTest::centredAndQueryAwareAreSettings() {
  SettingsPanel panel;
  panel.applyPreset(QStringLiteral("paper"));
  auto* centre = panel.findChild<QCheckBox*>(QStringLiteral("centerChannels"));
  auto* queryAware = panel.findChild<QCheckBox*>(QStringLiteral("queryAware"));
  QVERIFY(centre != nullptr && queryAware != nullptr);
  QVERIFY(!centre->isChecked() && !queryAware->isChecked());
  QVERIFY(!centre->toolTip().isEmpty() && !queryAware->toolTip().isEmpty());
  panel.applyPreset(QStringLiteral("model-loss"));
  QVERIFY(centre->isChecked() && queryAware->isChecked());
  QCOMPARE(panel.config().preset, std::string("model-loss"));
  QSignalSpy edited(&panel, &SettingsPanel::configEdited);
  queryAware->setChecked(false);
  QCOMPARE(edited.count(), 1);
  const kvq::RvqConfig c = panel.config();
  QCOMPARE(c.preset, std::string("custom"));
  QVERIFY(c.centerChannels && !c.queryAware);
  QCOMPARE(c.codebookSize, kvq::presetConfig("model-loss").codebookSize);
  panel.saveSettings();
  SettingsPanel restored;
  restored.restoreSettings();
  QVERIFY(restored.config().centerChannels && !restored.config().queryAware);
  kvq::RvqConfig plain = c;
  plain.centerChannels = false;
  QVERIFY(StudyController::cacheKey("d.h5", c, {0}) != StudyController::cacheKey("d.h5", plain, {0}));
}

// A session's reader is HDF5: the study controller's reference to a replaced or
// destroyed session goes to the jobs, so the last release happens on the worker.
void WidgetsTest::replacedSessionIsReleasedOnWorker() {
  JobQueue jobs;
  struct Release {
    std::thread::id thread;  // written before done is set
    std::atomic<bool> done{false};
  };
  auto probe = [](Release* release) {
    auto* raw = new DumpSession;
    raw->path = QStringLiteral("probe.h5");
    return SessionPtr(raw, [release](const DumpSession* s) {
      delete s;
      release->thread = std::this_thread::get_id();
      release->done = true;
    });
  };
  Release replaced, destroyed;
  {
    StudyController study(&jobs);
    SessionPtr session = probe(&replaced);
    study.setSession(session);
    session.reset();  // the controller holds the last reference
    study.setSession(probe(&destroyed));
    QVERIFY(test::waitUntil([&] { return replaced.done.load(); }));
  }  // the controller's destructor hands over the second one
  QVERIFY(test::waitUntil([&] { return destroyed.done.load(); }));
  QVERIFY(replaced.thread != std::this_thread::get_id());
  QVERIFY(destroyed.thread != std::this_thread::get_id());
}

void WidgetsTest::unavailableBackendKeepsPrevious() {
  JobQueue jobs;
  StudyController study(&jobs);
  const QString before = study.backendName();
  QVERIFY(before.startsWith(QStringLiteral("CPU")));
  QString failure, changed;
  connect(&study, &StudyController::backendFailed, this, [&](const QString& m) { failure = m; });
  connect(&study, &StudyController::backendChanged, this, [&](const QString& n) { changed = n; });
  if (!kvq::gpuBackendBuilt()) {
    study.setBackendChoice(QStringLiteral("cuda"));
    QVERIFY(test::waitUntil([&] { return !failure.isEmpty(); }));
    QCOMPARE(study.backendName(), before);
    QVERIFY(changed.isEmpty());
  }
  study.setBackendChoice(QStringLiteral("cpu"));
  QVERIFY(test::waitUntil([&] { return !changed.isEmpty(); }));
  QCOMPARE(changed, before);
}

void WidgetsTest::largeCodebookUsageIsDecimated() {
  // One stage of C = 16384 entries: entry i is used 16384 - i times, the last 384 never.
  const int C = 16384;
  std::vector<int64_t> histogram(C, 0);
  for (int i = 0; i < C - 384; ++i) histogram[static_cast<size_t>(i)] = C - i;
  kvq::StudyResult study;
  study.config.codebookSize = C;
  kvq::LayerKindResult job;
  job.layer = 3;
  job.kind = kvq::Kind::Values;
  kvq::QuantizerResult q;
  q.usage.push_back(kvq::usageFromHistogram(histogram));
  job.quantizers.push_back(q);
  job.byDepth.resize(1);
  study.jobs.push_back(job);
  CodebookUsageChart chart;
  chart.setStudy(study, 3, kvq::Kind::Values, -1, 1);
  QCOMPARE(chart.series().size(), 1);
  auto* line = qobject_cast<QLineSeries*>(chart.series().front());
  QVERIFY(line->count() <= 2049);
  QVERIFY(line->count() > 1024);
  for (int i = 0; i < 1024; ++i) QCOMPARE(line->at(i).x(), static_cast<double>(i));
  QCOMPARE(line->at(line->count() - 1).x(), static_cast<double>(C - 384 - 1));  // the last used entry
  // Shares: count / total, descending.
  const double total = static_cast<double>(q.usage[0].total);
  QCOMPARE(line->at(0).y(), C / total);
  for (int i = 1; i < line->count(); ++i) QVERIFY(line->at(i).y() < line->at(i - 1).y());
  QVERIFY(line->name().contains(QStringLiteral("dead 384")));
}

QTEST_MAIN(WidgetsTest)
#include "test_widgets.moc"
