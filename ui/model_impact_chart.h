// Model impact chart: what the quantized cache costs the model (kvq ppl, docs/model.md) —
// perplexity (left axis) and mean KL divergence against the float32 cache (right axis, log)
// against bits per channel, for RVQ at every depth and for KIVI-2/3/4; the reference perplexity
// is a dotted line. Hovering a point reads out its numbers.
#pragma once

#include "chart_widget.h"
#include "kvq/model/perplexity.h"

namespace kvq::ui {

class ModelImpactChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit ModelImpactChart(QWidget* parent = nullptr);
  void setReport(const kvq::PplReport& report);
};

}  // namespace kvq::ui
