// Rate–distortion chart: bits per channel vs held-out relative error (log) of RVQ
// at every trained depth and of the scalar baselines, keys and values summed over
// the trained layers; the current depth is highlighted.
#pragma once

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class RateDistortionChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit RateDistortionChart(QWidget* parent = nullptr);
  QString fileStem() const override { return QStringLiteral("rate_distortion"); }
  // depth: the highlighted depth (1..trained depth).
  void setStudy(const kvq::StudyResult& study, int depth);
};

}  // namespace kvq::ui
