// ModelImpactView — the "Model impact" tab: the GGUF model the dump was made with (picked once,
// remembered in QSettings), a Run button with the tokens the run keeps exact (sinks, RVQ's and
// KIVI's recent windows), "Open results…" for `kvq ppl --json` reports charted beside the run,
// and the ModelImpactChart; under it the AllocationChart
// of a codebook file written by kvq allocate ("Open allocation…"). MainWindow runs the
// evaluation on the job queue (tag job_tag::kModel) when runRequested is emitted, and reads the
// file when allocationRequested is.
#pragma once

#include <QWidget>

class QLabel;
class QPushButton;
class QSpinBox;

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
  // Tokens the run keeps exact: the first `sinks()` of each sequence (RVQ and KIVI), RVQ's sliding
  // window of the `rvqWindow()` most recent tokens, KIVI's full-precision window (a multiple of 32).
  int sinks() const;
  int rvqWindow() const;
  int kiviWindow() const;
  // What the view says under its buttons (the task state, or why Run is disabled).
  void setStatus(const QString& text);

  static QString settingsKey() { return QStringLiteral("model/path"); }

 signals:
  void runRequested();
  void allocationRequested(const QString& path);
  // `kvq ppl --json` reports to chart beside the run.
  void resultsRequested(const QStringList& paths);

 private:
  void chooseModel();
  void chooseAllocation();
  void chooseResults();

  QString m_modelPath;
  QLabel* m_pathLabel;
  QLabel* m_status;
  QPushButton* m_run;
  QSpinBox* m_sinks;
  QSpinBox* m_rvqWindow;
  QSpinBox* m_kiviWindow;
  ModelImpactChart* m_chart;
  AllocationChart* m_allocation;
};

}  // namespace kvq::ui
