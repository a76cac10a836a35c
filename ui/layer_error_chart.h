// Per-layer bars: held-out relative error of keys and values of every trained
// layer at the current depth.
#pragma once

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class LayerErrorChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit LayerErrorChart(QWidget* parent = nullptr);
  void setStudy(const kvq::StudyResult& study, int depth);
};

}  // namespace kvq::ui
