// MainWindow: opening dumps. Core's open path (kvq/isolate/open_file.h) runs on
// the job queue; its header and per-layer events come back to the UI thread by
// queued call and fill the dataset panel as *pending* while the window keeps the
// previous session; only a dump that passed replaces it (setSession).
#include <QAction>
#include <QFileInfo>
#include <QMetaObject>
#include <QSettings>
#include <QStatusBar>

#include <memory>

#include "dataset_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "main_window.h"
#include "message_presenter.h"
#include "recent_files.h"

namespace kvq::ui {
namespace {

const QString kTrustKey = QStringLiteral("open/withoutIsolation");

}  // namespace

void MainWindow::createOpenActions() {
  m_trustFilesAction = new QAction(tr("Open Files &Without Isolation (trusted files only)"), this);
  m_trustFilesAction->setCheckable(true);
  m_trustFilesAction->setChecked(QSettings().value(kTrustKey, false).toBool());
  m_trustFilesAction->setStatusTip(
      tr("Parse dumps in this process instead of a limited validator process: a little faster, but a damaged "
         "or hostile file can then crash the studio"));
  connect(m_trustFilesAction, &QAction::toggled, this,
          [](bool checked) { QSettings().setValue(kTrustKey, checked); });
}

kvq::OpenPolicy MainWindow::openPolicy() const {
  kvq::OpenPolicy policy = kvq::OpenPolicy::fromEnvironment();
  policy.isolate = !m_trustFilesAction->isChecked();
  return policy;  // validator: core's lookup (KVQ_VALIDATOR, beside kvq-studio, build, install)
}

void MainWindow::openFile(const QString& path) {
  const QString absolute = QFileInfo(path).absoluteFilePath();
  // The id of this request, known once run() returns; the queued calls below run
  // after that, on this thread, and drop themselves when a newer open exists.
  auto request = std::make_shared<quint64>(0);
  kvq::OpenListener listener;
  listener.onHeader = [this, request, absolute](const kvq::DumpInfo& info) {
    QMetaObject::invokeMethod(
        this, [this, request, info, absolute] { onOpenHeader(*request, info, absolute); },
        Qt::QueuedConnection);
  };
  listener.onLayer = [this, request](const kvq::LayerStats& stats) {
    QMetaObject::invokeMethod(
        this, [this, request, stats] { onOpenLayer(*request, stats); }, Qt::QueuedConnection);
  };
  const kvq::OpenPolicy policy = openPolicy();
  *request = m_jobs->run<SessionPtr>(
      job_tag::kOpen, tr("Opening %1").arg(QFileInfo(path).fileName()), this,
      [absolute, policy, listener](const kvq::TaskControl& control) {
        return loadSession(absolute, policy, listener, control);
      },
      [this](SessionPtr& session) {
        m_recent->add(session->path);
        setSession(std::move(session));
      },
      [this, absolute](const kvq::Error& error) { onOpenFailed(absolute, error); });
}

void MainWindow::onOpenHeader(quint64 request, const kvq::DumpInfo& info, const QString& path) {
  if (request != m_jobs->latestId(job_tag::kOpen) || !m_jobs->isPending(job_tag::kOpen)) return;
  m_dataset->showPending(info);
  statusBar()->showMessage(
      tr("Opening %1: %2 layers × %3 heads × %4 channels, %5 tokens; computing statistics…")
          .arg(QFileInfo(path).fileName())
          .arg(info.layers.size())
          .arg(info.numKvHeads)
          .arg(info.headDim)
          .arg(info.tokens));
  emit openHeaderShown();
}

void MainWindow::onOpenLayer(quint64 request, const kvq::LayerStats& stats) {
  if (request != m_jobs->latestId(job_tag::kOpen) || !m_jobs->isPending(job_tag::kOpen)) return;
  m_dataset->fillPending(stats);
}

void MainWindow::onOpenFailed(const QString& path, const kvq::Error& error) {
  // The open session stays exactly as it was: nothing was replaced; the dataset
  // panel leaves the refused dump's pending view.
  m_dataset->restore();
  const QString message = QString::fromStdString(error.what());
  m_presenter->showError(this, tr("Cannot open %1").arg(QFileInfo(path).fileName()), message);
  emit openFailed(message);
}

}  // namespace kvq::ui
