// ModelImpactView — the "Model impact" tab: the GGUF model the dump was made with (picked once,
// remembered in QSettings), a Run button, and the ModelImpactChart; under it the AllocationChart
// of a codebook file written by kvq allocate ("Open allocation…"). MainWindow runs the
// evaluation on the job queue (tag job_tag::kModel) when runRequested is emitted, and reads the
// file when allocationRequested is.
#pragma once

#include <QWidget>

class QLabel;
class QPushButton;

namespace kvq::ui {

class AllocationChart;
class ModelImpactChart;

class ModelImpactView : public QWidget {
  Q_OBJECT

 public:
  explicit ModelImpactView(QWidget* parent = nullptr);

  ModelImpactChart* chart() const { return m_chart; }
  AllocationChart* allocationChart() const { return m_allocation; }
  QPushButton* runButton() const { return m_run; }
  // The remembered model path ("" before one was chosen).
  QString modelPath() const { return m_modelPath; }
  // Sets and remembers the path (QSettings key "model/path").
  void setModelPath(const QString& path);
  // What the view says under its buttons (the task state, or why Run is disabled).
  void setStatus(const QString& text);

  static QString settingsKey() { return QStringLiteral("model/path"); }

 signals:
  void runRequested();
  void allocationRequested(const QString& path);

 private:
  void chooseModel();
  void chooseAllocation();

  QString m_modelPath;
  QLabel* m_pathLabel;
  QLabel* m_status;
  QPushButton* m_run;
  ModelImpactChart* m_chart;
  AllocationChart* m_allocation;
};

}  // namespace kvq::ui
