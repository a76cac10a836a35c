// TaskProgressWidget — the status bar's view of the job queue: the running task's
// stage, a progress bar, an estimate of the time left, and a cancel button.
#pragma once

#include <QElapsedTimer>
#include <QWidget>

#include "job_queue.h"

class QLabel;
class QProgressBar;
class QToolButton;

namespace kvq::ui {

class TaskProgressWidget : public QWidget {
  Q_OBJECT

 public:
  explicit TaskProgressWidget(JobQueue* jobs, QWidget* parent = nullptr);

  QProgressBar* bar() const { return m_bar; }
  QToolButton* cancelButton() const { return m_cancel; }
  QString currentTag() const { return m_tag; }

  // "1 min 05 s left" from elapsed seconds and the fraction done (empty when unknown).
  static QString timeLeftText(double elapsedSeconds, double fraction);

 private:
  void onStarted(const QString& tag, quint64 id, const QString& label);
  void onProgress(const QString& tag, quint64 id, double fraction, const QString& stage);
  void onFinished(const QString& tag, quint64 id, JobQueue::Outcome outcome, const QString& message);

  JobQueue* m_jobs;
  QLabel* m_stage;
  QProgressBar* m_bar;
  QLabel* m_eta;
  QToolButton* m_cancel;
  QString m_tag;
  quint64 m_id = 0;
  QString m_label;
  QElapsedTimer m_clock;
};

}  // namespace kvq::ui
