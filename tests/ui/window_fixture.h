// What the GUI tests that drive a MainWindow share: the test application's identity, synthetic
// dumps in a temporary folder, a window with a presenter that records its messages, and a
// training awaited to its charts.
#pragma once

#include <QCoreApplication>
#include <QStandardPaths>
#include <QTemporaryDir>

#include <cstdint>
#include <memory>

#include "main_window.h"
#include "message_presenter.h"
#include "quick_training.h"
#include "settings_panel.h"
#include "study_controller.h"
#include "synth_dump.h"
#include "ui_test_util.h"

namespace kvq::ui::test {

// QStandardPaths in test mode and QSettings of the suite's own (kvq-tests/name): nothing is read
// from or written to the user's settings.
inline void initTestApplication(const QString& name) {
  QStandardPaths::setTestModeEnabled(true);
  QCoreApplication::setOrganizationName(QStringLiteral("kvq-tests"));
  QCoreApplication::setApplicationName(name);
}

// Base of a test class (after QObject) whose tests share one window.
struct WindowFixture {
  // A synthetic dump dir/name (kvq::test::writeSynthDumpOf, 2 kv heads).
  QString synthDump(const QString& name, int layers, int headDim, int64_t tokens,
                    uint64_t seed = SynthOptions{}.seed) const {
    const QString path = m_dir.filePath(name);
    kvq::test::writeSynthDumpOf(path.toStdString(), layers, 2, headDim, tokens, seed);
    return path;
  }
  // A new window (1280 x 800, not shown) reporting to a new presenter.
  void createWindow() {
    m_presenter = std::make_shared<RecordingPresenter>();
    m_window = std::make_unique<MainWindow>(m_presenter);
    m_window->resize(1280, 800);
  }
  // Opens path and waits for its session; false when none came.
  bool openAndWait(const QString& path) {
    m_window->openFile(path);
    return waitForSignal(m_window.get(), &MainWindow::sessionChanged);
  }
  // No training but those the test asks for: no auto-train, no background sizes.
  void trainOnlyOnRequest() {
    m_window->settingsPanel()->setAutoTrain(false);
    m_window->settingsPanel()->setBackgroundTraining(false);
    m_window->study()->setBackgroundEnabled(false);
  }
  // The "fast" preset at codebook size C and depth K, made a training of seconds: 4000 training
  // vectors of g = 8, 5 EMA steps of 1024.
  void setQuickConfig(int codebookSize, int depth) {
    SettingsPanel* settings = m_window->settingsPanel();
    settings->applyPreset(QStringLiteral("fast"));
    settings->setConfig(kvq::test::quickTraining(settings->config(), codebookSize, depth, 8, 4000, 5, 1024));
  }
  // Trains the settings' configuration (as Train does) and waits for the charts: "" when they
  // came and no error was shown, else what went wrong.
  QString trainAndWait() {
    m_window->train();
    if (!waitForSignal(m_window.get(), &MainWindow::chartsUpdated, 300000))
      return QStringLiteral("no charts within 300 s");
    return m_presenter->errors.join('\n');
  }

  QTemporaryDir m_dir;
  std::shared_ptr<RecordingPresenter> m_presenter;
  std::unique_ptr<MainWindow> m_window;
};

}  // namespace kvq::ui::test
