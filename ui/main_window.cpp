// MainWindow: construction, menus, opening dumps, window persistence.
// Training, charts and exports: main_window_study.cpp.
#include "main_window.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMimeData>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QToolBar>

#include "charts_panel.h"
#include "dataset_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "message_presenter.h"
#include "model_impact_view.h"
#include "recent_files.h"
#include "settings_panel.h"
#include "task_progress_widget.h"

// The icons live in kvq_ui, a static library: its resources need explicit
// registration (Q_INIT_RESOURCE must be called outside any namespace).
static void initKvqResources() {
  Q_INIT_RESOURCE(kvq);
}

namespace kvq::ui {
namespace {

QIcon icon(const char* name) {
  return QIcon(QStringLiteral(":/icons/%1.svg").arg(QLatin1String(name)));
}

}  // namespace

MainWindow::MainWindow(std::shared_ptr<MessagePresenter> presenter, QWidget* parent)
    : QMainWindow(parent),
      m_presenter(presenter ? std::move(presenter) : std::make_shared<DialogPresenter>()),
      m_jobs(new JobQueue(this)),
      m_dataset(new DatasetPanel(this)),
      m_settings(new SettingsPanel(this)),
      m_charts(new ChartsPanel(this)),
      m_study(new StudyController(m_jobs, this)),
      m_progress(new TaskProgressWidget(m_jobs, this)),
      m_backendLabel(new QLabel(this)) {
  initKvqResources();
  setObjectName(QStringLiteral("MainWindow"));
  setWindowIcon(icon("kvq"));
  setAcceptDrops(true);
  setCentralWidget(m_charts);

  m_datasetDock = new QDockWidget(tr("Dataset"), this);
  m_datasetDock->setObjectName(QStringLiteral("DatasetDock"));
  m_datasetDock->setWidget(m_dataset);
  addDockWidget(Qt::LeftDockWidgetArea, m_datasetDock);
  m_settingsDock = new QDockWidget(tr("Quantizer settings"), this);
  m_settingsDock->setObjectName(QStringLiteral("SettingsDock"));
  m_settingsDock->setWidget(m_settings);
  addDockWidget(Qt::RightDockWidgetArea, m_settingsDock);

  m_settings->setBackendName(m_study->backendName());
  m_backendLabel->setText(tr("Backend: %1").arg(m_study->backendName()));
  statusBar()->addPermanentWidget(m_progress);
  statusBar()->addPermanentWidget(m_backendLabel);

  createActions();
  createMenus();
  createToolBar();

  connectSettings();
  connectStudy();

  restoreWindowState();
  m_settings->restoreSettings();
  m_study->background()->setEnabled(m_settings->backgroundTraining());
  // The CPU backend exists from the start; any other choice is made on the jobs.
  if (m_settings->backendChoice() != QLatin1String("cpu"))
    m_study->setBackendChoice(m_settings->backendChoice());
  updateActions();
  updateTitle();
}

// The settings panel drives training, auto-training and the background trainer.
void MainWindow::connectSettings() {
  connect(m_dataset, &DatasetPanel::selectionChanged, this, &MainWindow::onSelection);
  connect(m_settings, &SettingsPanel::configEdited, this, [this] {
    onSettingsChanged();
    refreshChannels();
  });
  connect(m_settings, &SettingsPanel::depthChanged, this, &MainWindow::onSettingsChanged);
  connect(m_settings, &SettingsPanel::autoTrainToggled, this, [this](bool on) {
    if (on) onSettingsChanged();
  });
  connect(m_settings, &SettingsPanel::backgroundTrainingToggled, this, [this](bool on) {
    m_study->setBackgroundEnabled(on);
    updateNotice();
  });
}

// Results, failures and backend changes of the study and the job queue.
void MainWindow::connectStudy() {
  m_study->background()->setRange(
      {SettingsPanel::kMinCodebookSize, SettingsPanel::kMaxCodebookSize, SettingsPanel::kMaxDepth});
  connect(m_study, &StudyController::previewReady, this, [this] { refreshStudyCharts(); });
  connect(m_study, &StudyController::backgroundResult, this, &MainWindow::onBackgroundResult);
  connect(m_study->background(), &BackgroundTrainer::statusChanged, this, &MainWindow::updateNotice);
  connect(m_study, &StudyController::throughputChanged, this, &MainWindow::updateTrainingEstimate);
  connect(m_settings, &SettingsPanel::trainRequested, this, &MainWindow::train);
  connect(m_charts->modelImpact(), &ModelImpactView::runRequested, this, &MainWindow::runModelImpact);
  connect(m_charts->modelImpact(), &ModelImpactView::allocationRequested, this, &MainWindow::openAllocation);
  connect(m_charts->modelImpact(), &ModelImpactView::resultsRequested, this, &MainWindow::openModelResults);
  connect(m_settings, &SettingsPanel::backendChoiceChanged, m_study, &StudyController::setBackendChoice);
  connect(m_study, &StudyController::backendChanged, this, [this](const QString& name) {
    m_settings->setBackendName(name);
    m_backendLabel->setText(tr("Backend: %1").arg(name));
    refreshStudyCharts();
  });
  connect(m_study, &StudyController::backendFailed, this, [this](const QString& message) {
    m_settings->setBackendChoice(m_lastBackendChoice);
    m_presenter->showError(this, tr("Backend unavailable"), message);
  });
  connect(m_study, &StudyController::backendChanged, this,
          [this] { m_lastBackendChoice = m_settings->backendChoice(); });
  connect(m_study, &StudyController::resultReady, this, &MainWindow::onStudyReady);
  connect(m_study, &StudyController::trainingFailed, this,
          [this](const QString& message) { m_presenter->showError(this, tr("Training failed"), message); });
  connect(m_study, &StudyController::evaluationReady, this,
          [this](const StudyPtr& study, const QString& path) {
            m_comparison = study;
            m_comparisonLabel = QFileInfo(path).fileName();
            statusBar()->showMessage(
                tr("Evaluated %1 on %2 layer×kind quantizers").arg(m_comparisonLabel).arg(study->jobs.size()),
                8000);
            refreshStudyCharts();
            emit comparisonReady();
          });
  connect(m_study, &StudyController::evaluationFailed, this,
          [this](const QString& path, const QString& message) {
            m_presenter->showError(
                this, tr("Cannot evaluate %1 on this dump").arg(QFileInfo(path).fileName()), message);
            emit comparisonFailed(message);
          });
  connect(
      m_jobs, &JobQueue::taskFinished, this, [this](const QString& tag, quint64, JobQueue::Outcome outcome) {
        if (outcome == JobQueue::Outcome::Cancelled && tag != job_tag::kChannels && !m_jobs->isPending(tag)) {
          statusBar()->showMessage(tr("Cancelled — earlier results kept"), 4000);
        }
        // A cancelled open leaves the dataset panel on the session still open.
        if (tag == job_tag::kOpen && outcome != JobQueue::Outcome::Done && !m_jobs->isPending(tag)) {
          m_dataset->restore();
        }
        updateActions();
      });
  connect(m_jobs, &JobQueue::taskStarted, this, [this] { updateActions(); });
}

MainWindow::~MainWindow() {
  // The job queue (a child) is destroyed after this body and the study controller after
  // it: hand both references to the session to the job queue now, so the last one (and
  // with it the DumpReader) is released on the worker thread.
  m_study->setSession(nullptr);
  m_jobs->dispose(std::move(m_session));
}

void MainWindow::createActions() {
  m_openAction = new QAction(icon("open"), tr("&Open…"), this);
  m_openAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_O));
  m_openAction->setStatusTip(tr("Open a KV dump (HDF5)"));
  connect(m_openAction, &QAction::triggered, this, &MainWindow::openDialog);

  m_trainAction = new QAction(icon("train"), tr("&Train"), this);
  m_trainAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_T));
  m_trainAction->setStatusTip(tr("Train and evaluate quantizers for the current settings"));
  connect(m_trainAction, &QAction::triggered, this, &MainWindow::train);

  m_cancelAction = new QAction(icon("cancel"), tr("&Cancel"), this);
  m_cancelAction->setShortcut(QKeySequence(Qt::Key_Escape));
  m_cancelAction->setStatusTip(tr("Cancel the running task; earlier results stay"));
  connect(m_cancelAction, &QAction::triggered, this, [this] {
    m_jobs->cancelAll();
    m_study->background()->cancel();  // the background sizes stop too; slider moves restart theirs
  });

  m_exportChartAction = new QAction(icon("export"), tr("&Export Chart…"), this);
  m_exportChartAction->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
  m_exportChartAction->setStatusTip(tr("Save the visible chart as PNG, SVG or PDF"));
  connect(m_exportChartAction, &QAction::triggered, this, &MainWindow::exportChartDialog);

  m_exportAllChartsAction = new QAction(tr("Export &All Charts…"), this);
  m_exportAllChartsAction->setShortcut(QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_E));
  connect(m_exportAllChartsAction, &QAction::triggered, this, &MainWindow::exportChartsDialog);

  m_exportCodebooksAction = new QAction(tr("Export &Codebooks…"), this);
  m_exportCodebooksAction->setStatusTip(tr("Save the trained codebooks as an HDF5 codebook file or npz"));
  connect(m_exportCodebooksAction, &QAction::triggered, this, &MainWindow::exportCodebooksDialog);

  m_exportMetricsAction = new QAction(tr("Export &Metrics…"), this);
  m_exportMetricsAction->setStatusTip(tr("Save the metrics table as CSV or JSON"));
  connect(m_exportMetricsAction, &QAction::triggered, this, &MainWindow::exportMetricsDialog);

  createOpenActions();
  m_evaluateAction = new QAction(tr("E&valuate Codebooks…"), this);
  m_evaluateAction->setStatusTip(
      tr("Measure a codebook file (say, trained on another corpus) on the open dump, beside this training"));
  connect(m_evaluateAction, &QAction::triggered, this, &MainWindow::evaluateCodebooksDialog);

  m_attentionAction = new QAction(tr("Measure &Attention"), this);
  m_attentionAction->setCheckable(true);
  m_attentionAction->setChecked(QSettings().value(QStringLiteral("study/attention"), true).toBool());
  m_attentionAction->setStatusTip(
      tr("On dumps with queries, also measure what the quantizers do to attention"));
  m_study->setAttentionEnabled(m_attentionAction->isChecked());
  connect(m_attentionAction, &QAction::toggled, this, [this](bool on) {
    m_study->setAttentionEnabled(on);
    QSettings().setValue(QStringLiteral("study/attention"), on);
    refreshStudyCharts();
  });

  m_quitAction = new QAction(tr("&Quit"), this);
  m_quitAction->setShortcut(QKeySequence::Quit);
  connect(m_quitAction, &QAction::triggered, this, &QWidget::close);
}

void MainWindow::createMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  file->addAction(m_openAction);
  m_recentMenu = file->addMenu(tr("Open &Recent"));
  m_recent = new RecentFiles(m_recentMenu, this);
  connect(m_recent, &RecentFiles::openRequested, this, &MainWindow::openFile);
  file->addSeparator();
  file->addAction(m_evaluateAction);
  file->addSeparator();
  file->addAction(m_exportChartAction);
  file->addAction(m_exportAllChartsAction);
  file->addAction(m_exportCodebooksAction);
  file->addAction(m_exportMetricsAction);
  file->addSeparator();
  file->addAction(m_trustFilesAction);
  file->addSeparator();
  file->addAction(m_quitAction);

  QMenu* study = menuBar()->addMenu(tr("&Study"));
  study->addAction(m_trainAction);
  study->addAction(m_cancelAction);
  study->addSeparator();
  study->addAction(m_attentionAction);

  QMenu* view = menuBar()->addMenu(tr("&View"));
  view->addAction(m_datasetDock->toggleViewAction());
  view->addAction(m_settingsDock->toggleViewAction());

  QMenu* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&About KVQ Studio"), this, &MainWindow::about);
}

void MainWindow::createToolBar() {
  QToolBar* bar = addToolBar(tr("Main"));
  bar->setObjectName(QStringLiteral("MainToolBar"));
  bar->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
  bar->addAction(m_openAction);
  bar->addSeparator();
  bar->addAction(m_trainAction);
  bar->addAction(m_cancelAction);
  bar->addSeparator();
  bar->addAction(m_exportChartAction);
}

void MainWindow::openDialog() {
  const QString dir = m_session ? QFileInfo(m_session->path).absolutePath() : QString();
  const QString path = QFileDialog::getOpenFileName(this, tr("Open KV dump"), dir,
                                                    tr("KV dumps (*.h5 *.hdf5);;All files (*)"));
  if (!path.isEmpty()) openFile(path);
}

void MainWindow::setSession(SessionPtr session) {
  if (m_session) m_jobs->dispose(std::move(m_session));  // the old reader closes on the worker thread
  m_session = std::move(session);
  m_study->setSession(m_session);
  m_shown.reset();
  m_comparison.reset();  // evaluated on the previous dump
  m_charts->setComparison(nullptr, QString());
  m_charts->clearStudy();
  m_settings->setHeadDim(m_session->info().headDim);
  m_dataset->setSession(m_session);
  if (!m_session->info().layers.empty()) m_dataset->select(m_session->info().layers.front(), kvq::Kind::Keys);
  const kvq::DumpInfo& info = m_session->info();
  statusBar()->showMessage(tr("Opened %1: %2 layers × %3 heads × %4 channels, %5 tokens")
                               .arg(QFileInfo(m_session->path).fileName())
                               .arg(info.layers.size())
                               .arg(info.numKvHeads)
                               .arg(info.headDim)
                               .arg(info.tokens),
                           8000);
  updateTrainingEstimate();
  refreshStudyCharts();
  updateActions();
  updateTitle();
  emit sessionChanged();
}

void MainWindow::updateActions() {
  const bool open = m_session != nullptr;
  m_trainAction->setEnabled(open);
  m_settings->trainButton()->setEnabled(open);
  m_cancelAction->setEnabled(m_jobs->isPending(job_tag::kOpen) || m_jobs->isPending(job_tag::kTrain) ||
                             m_jobs->isPending(job_tag::kModel) || m_jobs->isPending(job_tag::kPreview) ||
                             m_jobs->isPending(job_tag::kEvaluate) || !m_study->background()->isIdle());
  m_charts->modelImpact()->runButton()->setEnabled(open && !m_jobs->isPending(job_tag::kModel));
  m_exportCodebooksAction->setEnabled(m_shown != nullptr);
  m_exportMetricsAction->setEnabled(m_shown != nullptr);
  m_evaluateAction->setEnabled(open);
  m_exportChartAction->setEnabled(open);
  m_exportAllChartsAction->setEnabled(open);
}

void MainWindow::updateTitle() {
  setWindowTitle(m_session ? tr("%1 — KVQ Studio").arg(QFileInfo(m_session->path).fileName())
                           : tr("KVQ Studio"));
}

void MainWindow::restoreWindowState() {
  QSettings settings;
  if (!restoreGeometry(settings.value(QStringLiteral("mainWindow/geometry")).toByteArray()))
    resize(1440, 860);
  if (!restoreState(settings.value(QStringLiteral("mainWindow/state")).toByteArray())) {
    // First run: room for the statistics columns and the settings' labels.
    resizeDocks({m_datasetDock, m_settingsDock}, {470, 340}, Qt::Horizontal);
  }
}

void MainWindow::closeEvent(QCloseEvent* event) {
  QSettings settings;
  settings.setValue(QStringLiteral("mainWindow/geometry"), saveGeometry());
  settings.setValue(QStringLiteral("mainWindow/state"), saveState());
  m_settings->saveSettings();
  m_jobs->cancelAll();
  event->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
  const QList<QUrl> urls = event->mimeData()->urls();
  if (!urls.isEmpty() && urls.front().isLocalFile()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
  const QList<QUrl> urls = event->mimeData()->urls();
  if (urls.isEmpty() || !urls.front().isLocalFile()) return;
  event->acceptProposedAction();
  openFile(urls.front().toLocalFile());
}

void MainWindow::about() {
  m_presenter->showInfo(
      this, tr("About KVQ Studio"),
      tr("KVQ Studio %1\n\nResidual vector quantization of LLM key/value caches (Kumar 2024): open a KV "
         "dump, "
         "train codebooks, compare error and compression against scalar baselines.\n\nBackend: %2")
          .arg(QApplication::applicationVersion(), m_study->backendName()));
}

}  // namespace kvq::ui
