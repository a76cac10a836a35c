// Opening untrusted dumps in the studio (docs/reliability.md): a file that crashes
// libhdf5 becomes a dialog while the window, the open dump and the trained results
// stay exactly as they were — whether the library dies before the header or while
// the statistics stream in; a large dump shows its dataset before its statistics;
// trusted files can be opened without isolation.
#include <QAction>
#include <QLabel>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cstdlib>
#include <memory>

#include "dataset_model.h"
#include "dataset_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/dump/synth.h"
#include "kvq/io/codebook_file.h"
#include "main_window.h"
#include "message_presenter.h"
#include "recent_files.h"
#include "settings_panel.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;

class HostileOpenTest : public QObject, kvq::ui::test::WindowFixture {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void crashingFileLeavesEverythingAsItWas();
  void crashWhileStatisticsStreamRestoresThePanel();
  void crashingCodebookFileIsRefusedAndKeepsTheSession();
  void largeDumpShowsDatasetBeforeStatistics();
  void trustedFilesOpenWithoutIsolation();

 private:
  // What must not change when an open fails.
  struct Snapshot {
    SessionPtr session;
    StudyPtr study;
    QString title;
    int rows = 0;
    QString firstCell, summary;
  };
  Snapshot snapshot() const;
  void expectUnchanged(const Snapshot& before) const;

  QString m_good;
};

void HostileOpenTest::initTestCase() {
  kvq::ui::test::initTestApplication(QStringLiteral("test_hostile_open"));
  QVERIFY(m_dir.isValid());
  // Statistics must be computed, not found in a cache of an earlier run.
  qputenv("XDG_CACHE_HOME", m_dir.filePath(QStringLiteral("cache")).toUtf8());
  m_good = synthDump(QStringLiteral("good.h5"), 3, 32, 1024, 5);

  // A session with trained results: what a crash must not take away.
  createWindow();
  QVERIFY(openAndWait(m_good));
  // One training and nothing after it: a background size or an auto-train landing later
  // would replace the shown study that every test compares against.
  trainOnlyOnRequest();
  setQuickConfig(32, 2);
  const QString trained = trainAndWait();
  QVERIFY2(trained.isEmpty(), qPrintable(trained));
  QVERIFY(m_window->shownStudy() != nullptr);
}

void HostileOpenTest::cleanupTestCase() {
  m_window.reset();
}

HostileOpenTest::Snapshot HostileOpenTest::snapshot() const {
  const DatasetModel* model = m_window->datasetPanel()->model();
  return {m_window->session(),
          m_window->shownStudy(),
          m_window->windowTitle(),
          model->rowCount(),
          model->index(0, 0, model->index(0, 0)).siblingAtColumn(DatasetModel::StdColumn).data().toString(),
          m_window->datasetPanel()->findChild<QLabel*>()->text()};
}

void HostileOpenTest::expectUnchanged(const Snapshot& before) const {
  const Snapshot after = snapshot();
  QCOMPARE(after.session, before.session);  // the very same objects
  QCOMPARE(after.study, before.study);
  QCOMPARE(after.title, before.title);
  QCOMPARE(after.rows, before.rows);
  QCOMPARE(after.firstCell, before.firstCell);
  QCOMPARE(after.summary, before.summary);
  QVERIFY(!m_window->datasetPanel()->isPending());
  QCOMPARE(m_window->study()->trainingsCompleted(), 1);
}

void HostileOpenTest::crashingFileLeavesEverythingAsItWas() {
  const QString crash = QStringLiteral(KVQ_SOURCE_DIR "/tests/data/hostile/crash_global_heap.h5");
  const Snapshot before = snapshot();
  m_presenter->errors.clear();
  m_window->openFile(crash);
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::openFailed, 120000));
  QCOMPARE(m_presenter->errors.size(), 1);
  QCOMPARE(
      m_presenter->errors.front(),
      QStringLiteral("Cannot open crash_global_heap.h5: ") + crash +
          QStringLiteral(": the HDF5 library crashed (SIGSEGV) while reading root attribute 'model': the "
                         "file is damaged or hostile"));
  expectUnchanged(before);
  QVERIFY(!m_window->recentFiles()->files().contains(crash));
}

void HostileOpenTest::crashWhileStatisticsStreamRestoresThePanel() {
  const QString other = synthDump(QStringLiteral("crashes-late.h5"), 4, 16, 512, 8);
  const Snapshot before = snapshot();
  m_presenter->errors.clear();
  qputenv("KVQ_VALIDATOR_FAULT", "segv@reading /layers/2/keys");  // the validator's test hook
  bool headerShown = false;
  const auto connection = connect(m_window.get(), &MainWindow::openHeaderShown, this, [&] {
    headerShown = true;
    // The new dump's layers are on screen, pending; the window still holds the old session.
    QCOMPARE(m_window->datasetPanel()->model()->rowCount(), 4);
    QVERIFY(m_window->datasetPanel()->isPending());
    QCOMPARE(m_window->session(), before.session);
  });
  m_window->openFile(other);
  const bool failed = waitForSignal(m_window.get(), &MainWindow::openFailed, 120000);
  qunsetenv("KVQ_VALIDATOR_FAULT");
  disconnect(connection);
  QVERIFY(failed);
  QVERIFY(headerShown);
  QCOMPARE(m_presenter->errors.size(), 1);
  QVERIFY2(m_presenter->errors.front().endsWith(QStringLiteral(
               ": the HDF5 library crashed (SIGSEGV) while reading /layers/2/keys tokens [0, 512): "
               "the file is damaged or hostile")),
           qPrintable(m_presenter->errors.front()));
  expectUnchanged(before);
}

void HostileOpenTest::crashingCodebookFileIsRefusedAndKeepsTheSession() {
  // File > Evaluate Codebooks on a file that crashes the library: a dialog, nothing lost.
  const QString codebooks = m_dir.filePath(QStringLiteral("crashing-codebooks.h5"));
  kvq::writeCodebookFile(codebooks.toStdString(), kvq::codebookFileFromStudy(*m_window->shownStudy()));
  const Snapshot before = snapshot();
  m_presenter->errors.clear();
  qputenv("KVQ_VALIDATOR_FAULT", "segv@opening /layers/0/keys/codebooks");
  m_window->evaluateCodebooks(codebooks);
  const bool failed = waitForSignal(m_window.get(), &MainWindow::comparisonFailed, 120000);
  qunsetenv("KVQ_VALIDATOR_FAULT");
  QVERIFY(failed);
  QCOMPARE(m_presenter->errors.size(), 1);
  QVERIFY2(m_presenter->errors.front().contains(
               codebooks + QStringLiteral(": the HDF5 library crashed (SIGSEGV) while opening "
                                          "/layers/0/keys/codebooks: the file is damaged or hostile")),
           qPrintable(m_presenter->errors.front()));
  QVERIFY(m_window->comparison() == nullptr);
  expectUnchanged(before);
}

void HostileOpenTest::largeDumpShowsDatasetBeforeStatistics() {
  // 8 layers x 2 heads x 64 channels x 16384 tokens (64 MiB as float32): the
  // statistics take a while, the header none.
  const QString large = synthDump(QStringLiteral("large.h5"), 8, 64, 16384, 13);
  MainWindow window(std::make_shared<RecordingPresenter>());
  int filledAtHeader = -1;
  bool openRunning = false;
  QString summary;
  const auto connection = connect(&window, &MainWindow::openHeaderShown, this, [&] {
    filledAtHeader = window.datasetPanel()->model()->filledLayers();
    openRunning = window.jobs()->isPending(job_tag::kOpen);
    summary = window.datasetPanel()->findChild<QLabel*>()->text();
    QCOMPARE(window.datasetPanel()->model()->rowCount(), 8);
    QVERIFY(window.session() == nullptr);
  });
  window.openFile(large);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged, 300000));
  disconnect(connection);
  QCOMPARE(filledAtHeader, 0);  // the dataset was painted before any statistics
  QVERIFY(openRunning);         // ... while the open was still running
  QVERIFY2(summary.contains(QStringLiteral("16,384")) || summary.contains(QStringLiteral("16384")),
           qPrintable(summary));
  QVERIFY(summary.contains(QStringLiteral("Computing statistics: 0 of 8 layers")));
  QCOMPARE(window.datasetPanel()->model()->filledLayers(), 8);
  QVERIFY(!window.datasetPanel()->isPending());
  QCOMPARE(window.session()->stats.size(), size_t{8});
  QVERIFY(!window.session()->statsFromCache);

  // Reopened: the per-user cache answers at once.
  window.openFile(large);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged, 300000));
  QVERIFY(window.session()->statsFromCache);
  QCOMPARE(window.datasetPanel()->model()->filledLayers(), 8);
}

void HostileOpenTest::trustedFilesOpenWithoutIsolation() {
  {
    MainWindow window(std::make_shared<RecordingPresenter>());
    QVERIFY(!window.trustFilesAction()->isChecked());  // isolation by default
    window.trustFilesAction()->setChecked(true);
  }
  MainWindow window(std::make_shared<RecordingPresenter>());
  QVERIFY(window.trustFilesAction()->isChecked());  // persisted
  // With a validator that cannot start, only an in-process open can succeed.
  qputenv("KVQ_VALIDATOR", "/nonexistent/kvq");
  window.openFile(m_good);
  const bool opened = waitForSignal(&window, &MainWindow::sessionChanged, 120000);
  window.trustFilesAction()->setChecked(false);
  QVERIFY(opened);
  QCOMPARE(window.session()->stats.size(), size_t{3});
  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow isolated(presenter);
  isolated.openFile(m_good);
  QVERIFY(waitForSignal(&isolated, &MainWindow::openFailed, 120000));
  QVERIFY2(presenter->errors.front().contains(QStringLiteral("/nonexistent/kvq: cannot start the validator")),
           qPrintable(presenter->errors.front()));
  qunsetenv("KVQ_VALIDATOR");
}

QTEST_MAIN(HostileOpenTest)
#include "test_hostile_open.moc"
