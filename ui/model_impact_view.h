// ModelImpactView — the "Model impact" tab: the GGUF model the dump was made with (picked once,
// remembered in QSettings), a Run button, and the ModelImpactChart. MainWindow runs the
// evaluation on the job queue (tag job_tag::kModel) when runRequested is emitted.
#pragma once

#include <QWidget>

class QLabel;
class QPushButton;

namespace kvq::ui {

class ModelImpactChart;

class ModelImpactView : public QWidget {
  Q_OBJECT

 public:
  explicit ModelImpactView(QWidget* parent = nullptr);

  ModelImpactChart* chart() const { return m_chart; }
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

 private:
  void chooseModel();

  QString m_modelPath;
  QLabel* m_pathLabel;
  QLabel* m_status;
  QPushButton* m_run;
  ModelImpactChart* m_chart;
};

}  // namespace kvq::ui
