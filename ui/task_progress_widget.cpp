#include "task_progress_widget.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QProgressBar>
#include <QToolButton>

#include <cmath>

namespace kvq::ui {

TaskProgressWidget::TaskProgressWidget(JobQueue* jobs, QWidget* parent)
    : QWidget(parent),
      m_jobs(jobs),
      m_stage(new QLabel(this)),
      m_bar(new QProgressBar(this)),
      m_eta(new QLabel(this)),
      m_cancel(new QToolButton(this)) {
  m_bar->setRange(0, 1000);
  m_bar->setTextVisible(false);
  m_bar->setFixedWidth(160);
  m_stage->setMinimumWidth(380);
  m_stage->setAlignment(Qt::AlignRight | Qt::AlignVCenter);
  m_cancel->setText(tr("Cancel"));
  m_cancel->setToolTip(tr("Cancel the running task (earlier results stay)"));
  m_cancel->setAutoRaise(true);
  auto* layout = new QHBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(m_stage);
  layout->addWidget(m_bar);
  layout->addWidget(m_eta);
  layout->addWidget(m_cancel);
  setVisible(false);
  connect(m_cancel, &QToolButton::clicked, this, [this] {
    if (!m_tag.isEmpty()) m_jobs->cancel(m_tag);
  });
  connect(jobs, &JobQueue::taskStarted, this, &TaskProgressWidget::onStarted);
  connect(jobs, &JobQueue::taskProgress, this, &TaskProgressWidget::onProgress);
  connect(jobs, &JobQueue::taskFinished, this, &TaskProgressWidget::onFinished);
}

QString TaskProgressWidget::timeLeftText(double elapsedSeconds, double fraction) {
  // Too early for a stable rate: say nothing rather than something wild.
  if (fraction < 0.02 || elapsedSeconds < 0.5 || fraction >= 1.0) return {};
  const double left = elapsedSeconds * (1.0 - fraction) / fraction;
  const long total = std::lround(left);
  if (total < 60) return tr("%1 s left").arg(std::max(total, 1L));
  return tr("%1 min %2 s left").arg(total / 60).arg(total % 60, 2, 10, QLatin1Char('0'));
}

void TaskProgressWidget::onStarted(const QString& tag, quint64 id, const QString& label) {
  m_tag = tag;
  m_id = id;
  m_label = label;
  m_clock.start();
  m_stage->setText(label);
  m_bar->setValue(0);
  m_eta->clear();
  setVisible(true);
}

void TaskProgressWidget::onProgress(const QString& tag, quint64 id, double fraction, const QString& stage) {
  if (tag != m_tag || id != m_id) return;
  m_bar->setValue(static_cast<int>(std::lround(1000.0 * fraction)));
  m_stage->setText(stage.isEmpty() ? m_label : m_label + QStringLiteral(" — ") + stage);
  m_eta->setText(timeLeftText(m_clock.elapsed() / 1000.0, fraction));
}

void TaskProgressWidget::onFinished(const QString& tag, quint64 id, JobQueue::Outcome, const QString&) {
  if (tag != m_tag || id != m_id) return;
  m_tag.clear();
  m_id = 0;
  setVisible(false);
}

}  // namespace kvq::ui
