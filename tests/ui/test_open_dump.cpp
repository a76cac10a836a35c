// Stage 1: opening a dump shows computeDumpStats's numbers in the dataset panel;
// a malformed file shows the reader's message and leaves the session unchanged.
#include <QDropEvent>
#include <QFile>
#include <QMimeData>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QTreeView>

#include <memory>

#include "dataset_model.h"
#include "dataset_panel.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "main_window.h"
#include "message_presenter.h"
#include "recent_files.h"
#include "settings_panel.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;

class OpenDumpTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase();
  void datasetPanelShowsDumpStats();
  void malformedFileShowsReaderMessageAndKeepsSession();
  void missingFileShowsReaderMessage();
  void secondOpenReplacesSession();
  void dropOpensFile();
  void geometryAndSettingsPersist();

 private:
  QString synthDump(const QString& name, int layers, uint64_t seed);
  QTemporaryDir m_dir;
};

void OpenDumpTest::initTestCase() {
  kvq::ui::test::initTestApplication(QStringLiteral("test_open_dump"));
  QVERIFY(m_dir.isValid());
}

QString OpenDumpTest::synthDump(const QString& name, int layers, uint64_t seed) {
  const QString path = m_dir.filePath(name);
  kvq::test::writeSynthDumpOf(path.toStdString(), layers, 2, 32, 512, seed);
  return path;
}

namespace {

double cell(const QModelIndex& index) {
  return index.data(Qt::UserRole).toDouble();
}

void compareRow(const DatasetModel& model, const QModelIndex& name, const kvq::ValueStats& expected) {
  QCOMPARE(cell(name.siblingAtColumn(DatasetModel::MeanAbsColumn)), expected.meanAbs);
  QCOMPARE(cell(name.siblingAtColumn(DatasetModel::StdColumn)), expected.std);
  QCOMPARE(cell(name.siblingAtColumn(DatasetModel::MaxAbsColumn)), expected.maxAbs);
  QCOMPARE(cell(name.siblingAtColumn(DatasetModel::KurtosisColumn)), expected.excessKurtosis);
  // The display text is the same number, rounded.
  QCOMPARE(model.data(name.siblingAtColumn(DatasetModel::MeanAbsColumn)).toString(),
           QString::number(expected.meanAbs, 'f', 4));
}

}  // namespace

void OpenDumpTest::datasetPanelShowsDumpStats() {
  const QString path = synthDump(QStringLiteral("a.h5"), 3, 7);
  // The reference: core's API called directly.
  const auto reader = kvq::DumpReader::open(path.toStdString());
  const std::vector<kvq::LayerStats> expected = kvq::computeDumpStats(*reader);

  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  window.openFile(path);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged));
  QVERIFY(presenter->errors.isEmpty());
  QVERIFY(window.session() != nullptr);
  QCOMPARE(window.session()->info().numLayers, 3);

  const DatasetModel& model = *window.datasetPanel()->model();
  QCOMPARE(model.rowCount(), static_cast<int>(expected.size()));
  QCOMPARE(model.columnCount(), static_cast<int>(DatasetModel::ColumnCount));
  for (size_t l = 0; l < expected.size(); ++l) {
    const QModelIndex layer = model.index(static_cast<int>(l), 0);
    QCOMPARE(layer.data(DatasetModel::LayerRole).toInt(), expected[l].layer);
    QCOMPARE(model.rowCount(layer), 2);  // keys, values
    for (int k = 0; k < 2; ++k) {
      const kvq::KindStats& ks = k == 0 ? expected[l].keys : expected[l].values;
      const QModelIndex kind = model.index(k, 0, layer);
      QCOMPARE(kind.data().toString(), k == 0 ? QStringLiteral("keys") : QStringLiteral("values"));
      compareRow(model, kind, ks.all);
      QStringList outliers;
      for (int c : ks.outlierChannels) outliers << QString::number(c);
      QCOMPARE(kind.siblingAtColumn(DatasetModel::OutliersColumn).data().toString(), outliers.join(", "));
      QCOMPARE(model.rowCount(kind), static_cast<int>(ks.perHead.size()));
      for (size_t h = 0; h < ks.perHead.size(); ++h) {
        const QModelIndex head = model.index(static_cast<int>(h), 0, kind);
        QCOMPARE(head.data(DatasetModel::HeadRole).toInt(), static_cast<int>(h));
        compareRow(model, head, ks.perHead[h]);
      }
    }
  }
  QVERIFY(window.recentFiles()->files().contains(QFileInfo(path).absoluteFilePath()));
  QVERIFY(window.windowTitle().startsWith(QStringLiteral("a.h5")));
}

void OpenDumpTest::malformedFileShowsReaderMessageAndKeepsSession() {
  const QString good = synthDump(QStringLiteral("good.h5"), 2, 3);
  const QString bad = m_dir.filePath(QStringLiteral("notes.h5"));
  {
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is a text file, not HDF5\n");
  }
  QString expectedMessage;
  try {
    kvq::DumpReader::open(QFileInfo(bad).absoluteFilePath().toStdString());
    QFAIL("the reader accepted a text file");
  } catch (const kvq::Error& e) {
    expectedMessage = QString::fromStdString(e.what());
  }

  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  window.openFile(good);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged));
  const SessionPtr before = window.session();
  const int rowsBefore = window.datasetPanel()->model()->rowCount();
  const QString titleBefore = window.windowTitle();
  const QString firstCellBefore = window.datasetPanel()->model()->index(0, 0).data().toString();

  bool changed = false;
  connect(&window, &MainWindow::sessionChanged, this, [&] { changed = true; });
  window.openFile(bad);
  QVERIFY(waitForSignal(&window, &MainWindow::openFailed));
  QCOMPARE(presenter->errors.size(), 1);
  QCOMPARE(presenter->errors.front(), QStringLiteral("Cannot open notes.h5: ") + expectedMessage);
  QVERIFY(presenter->errors.front().contains(QFileInfo(bad).absoluteFilePath()));
  QVERIFY(!changed);
  QCOMPARE(window.session(), before);  // the very same session object
  QCOMPARE(window.datasetPanel()->model()->rowCount(), rowsBefore);
  QCOMPARE(window.datasetPanel()->model()->index(0, 0).data().toString(), firstCellBefore);
  QCOMPARE(window.windowTitle(), titleBefore);
  QVERIFY(!window.recentFiles()->files().contains(QFileInfo(bad).absoluteFilePath()));
}

void OpenDumpTest::missingFileShowsReaderMessage() {
  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  window.openFile(m_dir.filePath(QStringLiteral("does-not-exist.h5")));
  QVERIFY(waitForSignal(&window, &MainWindow::openFailed));
  QCOMPARE(presenter->errors.size(), 1);
  QVERIFY(presenter->errors.front().contains(QStringLiteral("does-not-exist.h5")));
  QVERIFY(window.session() == nullptr);
}

void OpenDumpTest::secondOpenReplacesSession() {
  const QString a = synthDump(QStringLiteral("two.h5"), 2, 11);
  const QString b = synthDump(QStringLiteral("four.h5"), 4, 12);
  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  window.openFile(a);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged));
  QCOMPARE(window.datasetPanel()->model()->rowCount(), 2);
  window.openFile(b);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged));
  QCOMPARE(window.datasetPanel()->model()->rowCount(), 4);
  QCOMPARE(window.recentFiles()->files().value(0), QFileInfo(b).absoluteFilePath());
  QCOMPARE(window.recentFiles()->files().value(1), QFileInfo(a).absoluteFilePath());
}

void OpenDumpTest::dropOpensFile() {
  const QString path = synthDump(QStringLiteral("dropped.h5"), 1, 21);
  auto presenter = std::make_shared<RecordingPresenter>();
  MainWindow window(presenter);
  QMimeData mime;
  mime.setUrls({QUrl::fromLocalFile(path)});
  QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &enter);
  QVERIFY(enter.isAccepted());
  QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(&window, &drop);
  QVERIFY(waitForSignal(&window, &MainWindow::sessionChanged));
  QCOMPARE(window.session()->path, QFileInfo(path).absoluteFilePath());
  QCOMPARE(window.datasetPanel()->model()->rowCount(), 1);
}

void OpenDumpTest::geometryAndSettingsPersist() {
  {
    MainWindow window(std::make_shared<RecordingPresenter>());
    window.resize(1111, 777);
    window.settingsPanel()->setCodebookSize(512);
    window.settingsPanel()->setDepth(5);
    window.settingsPanel()->setLayersText(QStringLiteral("0-1"));
    window.close();  // closeEvent saves geometry, dock state and settings
  }
  MainWindow window(std::make_shared<RecordingPresenter>());
  QCOMPARE(window.size(), QSize(1111, 777));
  QCOMPARE(window.settingsPanel()->config().codebookSize, 512);
  QCOMPARE(window.settingsPanel()->depth(), 5);
  QCOMPARE(window.settingsPanel()->layers({0, 1, 2, 3}), (QList<int>{0, 1}));
}

QTEST_MAIN(OpenDumpTest)
#include "test_open_dump.moc"
