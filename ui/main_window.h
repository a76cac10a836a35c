// MainWindow — KVQ Studio's window: dataset panel (left dock), quantizer settings
// (right dock), charts (centre tabs), job progress in the status bar.
// Opening a dump runs on the job queue through core's isolated open path
// (main_window_open.cpp): the dataset panel shows the new dump's header at once and
// its statistics as they arrive; a failure — a crash of the isolated HDF5 library
// included — shows a dialog and leaves the open session, the dataset panel and the
// trained results exactly as they were.
#pragma once

#include <QMainWindow>

#include <functional>
#include <memory>

#include "channel_chart.h"
#include "dump_session.h"
#include "kvq/base/error.h"
#include "study_controller.h"

class QAction;
class QDockWidget;
class QLabel;
class QMenu;

namespace kvq::ui {

class ChartsPanel;
class DatasetPanel;
class JobQueue;
class MessagePresenter;
class RecentFiles;
class SettingsPanel;
class StudyController;
class TaskProgressWidget;

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  // presenter: where messages go; nullptr = QMessageBox dialogs.
  explicit MainWindow(std::shared_ptr<MessagePresenter> presenter = nullptr, QWidget* parent = nullptr);
  ~MainWindow() override;

  // Starts opening path on the job queue; openHeaderShown, then sessionChanged or
  // openFailed follow.
  void openFile(const QString& path);
  // "Open Files Without Isolation": for trusted files only (persisted).
  QAction* trustFilesAction() const { return m_trustFilesAction; }
  const SessionPtr& session() const { return m_session; }

  JobQueue* jobs() const { return m_jobs; }
  DatasetPanel* datasetPanel() const { return m_dataset; }
  SettingsPanel* settingsPanel() const { return m_settings; }
  ChartsPanel* chartsPanel() const { return m_charts; }
  StudyController* study() const { return m_study; }
  TaskProgressWidget* progressWidget() const { return m_progress; }
  RecentFiles* recentFiles() const { return m_recent; }
  MessagePresenter& presenter() const { return *m_presenter; }
  // The study the charts show (may be older than the settings; nullptr before training).
  const StudyPtr& shownStudy() const { return m_shown; }

  // Trains the current settings (or shows the cached study that answers them).
  void train();
  // The Model impact tab's run (main_window_model.cpp): the chosen GGUF model over the open
  // dump's tokens with the shown study's codebooks and KIVI-2/3/4; the chart follows.
  void runModelImpact();
  // What the charts show besides the study ("" when they show exactly the settings).
  QString chartsNotice() const;
  // Reads a codebook file's /allocation into the Model impact tab's allocation chart (a dialog
  // when it cannot: the chart keeps what it showed).
  void openAllocation(const QString& path);
  // Charts `kvq ppl --json` reports beside the run (Model impact); a file that cannot be read or
  // was measured on other tokens is named in one dialog, the others are still charted.
  void openModelResults(const QStringList& paths);
  // Exports; failures go to the presenter and return false. Codebooks are written
  // on the job queue: exportFinished follows.
  bool exportCurrentChart(const QString& path);
  bool exportAllCharts(const QString& dir);
  bool exportMetrics(const QString& path);
  void exportCodebooks(const QString& path);
  // Evaluates a codebook file on the open dump and shows it beside the training
  // ("from FILE"); a file that does not fit the dump gets a dialog naming why.
  // comparisonReady or comparisonFailed follows.
  void evaluateCodebooks(const QString& path);
  const StudyPtr& comparison() const { return m_comparison; }

 signals:
  void sessionChanged();
  void openFailed(const QString& message);
  // The dump being opened has a valid header: the dataset panel shows it (pending).
  void openHeaderShown();
  void chartsUpdated();  // after the study charts were redrawn
  void exportFinished(const QString& path, bool ok);
  void comparisonReady();
  void comparisonFailed(const QString& message);

 protected:
  void closeEvent(QCloseEvent* event) override;
  void dragEnterEvent(QDragEnterEvent* event) override;
  void dropEvent(QDropEvent* event) override;

 private:
  void createActions();
  void createMenus();
  void createToolBar();
  void connectSettings();
  void connectStudy();
  void setSession(SessionPtr session);
  void createOpenActions();
  kvq::OpenPolicy openPolicy() const;
  void onOpenHeader(quint64 request, const kvq::DumpInfo& info, const QString& path);
  void onOpenLayer(quint64 request, const kvq::LayerStats& stats);
  void onOpenFailed(const QString& path, const kvq::Error& error);
  void openDialog();
  void exportChartDialog();
  void exportChartsDialog();
  void exportCodebooksDialog();
  void exportMetricsDialog();
  // Runs write (which returns the status-bar message) and shows its kvq::Error in a dialog;
  // false when it failed.
  bool runExport(const std::function<QString()>& write);
  void evaluateCodebooksDialog();
  void about();
  void onSelection(int layer, int kind, int head);
  void refreshStudyCharts();
  // After a settings change: the cache, the background plan (codebook size and depth)
  // or, with auto-train, a progressive training answers it.
  void onSettingsChanged();
  void ensureTrained();
  void updateNotice();
  QString studyNotice(bool withProgress) const;
  void updateTrainingEstimate();
  void onBackgroundResult(const StudyPtr& study);
  void refreshChannels();
  void onStudyReady(const StudyPtr& study);
  void restoreWindowState();
  void updateActions();
  void updateTitle();

  std::shared_ptr<MessagePresenter> m_presenter;
  JobQueue* m_jobs;
  SessionPtr m_session;
  StudyPtr m_shown;
  StudyPtr m_comparison;  // codebooks from a file evaluated on the open dump
  QString m_comparisonLabel;
  ChannelData m_channelData;
  int m_layer = 0;
  kvq::Kind m_kind = kvq::Kind::Keys;
  int m_head = -1;
  quint64 m_exportCount = 0;                            // makes each export's job tag unique
  QString m_lastBackendChoice = QStringLiteral("cpu");  // restored when a switch fails
  DatasetPanel* m_dataset;
  SettingsPanel* m_settings;
  ChartsPanel* m_charts;
  StudyController* m_study;
  TaskProgressWidget* m_progress;
  QLabel* m_backendLabel;
  QDockWidget* m_datasetDock = nullptr;
  QDockWidget* m_settingsDock = nullptr;
  RecentFiles* m_recent = nullptr;
  QMenu* m_recentMenu = nullptr;

  QAction* m_openAction = nullptr;
  QAction* m_trainAction = nullptr;
  QAction* m_cancelAction = nullptr;
  QAction* m_exportChartAction = nullptr;
  QAction* m_exportAllChartsAction = nullptr;
  QAction* m_exportCodebooksAction = nullptr;
  QAction* m_exportMetricsAction = nullptr;
  QAction* m_evaluateAction = nullptr;
  QAction* m_attentionAction = nullptr;
  QAction* m_quitAction = nullptr;
  QAction* m_trustFilesAction = nullptr;
};

}  // namespace kvq::ui
