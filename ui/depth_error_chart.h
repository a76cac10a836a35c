// Error by depth: held-out relative error of the selected layer after 1..K stages,
// keys and values, with the current depth marked.
#pragma once

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class DepthErrorChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit DepthErrorChart(QWidget* parent = nullptr);
  void setStudy(const kvq::StudyResult& study, int layer, int depth);
};

}  // namespace kvq::ui
