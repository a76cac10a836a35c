// Codebook usage per stage of the selected layer and kind: entry frequencies
// sorted from most to least used (rank–frequency), with each stage's perplexity
// and dead entries in the legend. A flat curve at 1/C uses the codebook fully.
// Curves have one point per used entry up to 2048 entries; beyond, the first 1024
// ranks and an evenly spaced subset ending at the last used rank.
#pragma once

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class CodebookUsageChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit CodebookUsageChart(QWidget* parent = nullptr);
  // Stages 1..depth of the quantizer of layer/kind (head's own when trained per head).
  void setStudy(const kvq::StudyResult& study, int layer, kvq::Kind kind, int head, int depth);
};

}  // namespace kvq::ui
