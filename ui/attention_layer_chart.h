// Attention error by layer: RVQ at the current depth against the KIVI baseline
// nearest in bits per channel, per layer with queries — the attention-output
// relative error (solid) and the attention KL in nats per query (dashed) on one
// log axis. Codebooks evaluated from a file add their own pair of lines. Hovering
// a point reads out that layer's value for every query head.
#pragma once

#include <memory>

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class AttentionLayerChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit AttentionLayerChart(QWidget* parent = nullptr);
  // depth: RVQ depth shown (the nearest measured one at or below it).
  void setStudy(const kvq::StudyResult& study, int depth, const kvq::StudyResult* comparison = nullptr,
                const QString& comparisonLabel = {});
};

}  // namespace kvq::ui
