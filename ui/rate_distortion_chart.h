// Rate–distortion chart: bits per channel against one error measure (log scale),
// RVQ at every trained depth and the scalar baselines; the current depth is
// highlighted. The measure is chosen above the chart: held-out relative error of
// keys and values summed over the trained layers, or (when the study measured
// attention) the attention-output relative error or the attention KL summed over
// the layers with queries. Codebooks evaluated from a file are a second series.
#pragma once

#include <memory>

#include "chart_widget.h"
#include "kvq/study/quantize_study.h"

class QColor;
class QComboBox;
class QLineSeries;
class QScatterSeries;

namespace kvq::ui {

enum class RdMetric { RelativeError = 0, AttentionOutput = 1, AttentionKl = 2 };

class RateDistortionChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit RateDistortionChart(QWidget* parent = nullptr);
  QString fileStem() const override;
  // depth: the highlighted depth (1..trained depth). comparison: codebooks from a
  // file evaluated on the same dump (nullptr: none), named by comparisonLabel.
  void setStudy(std::shared_ptr<const kvq::StudyResult> study, int depth,
                std::shared_ptr<const kvq::StudyResult> comparison = nullptr,
                const QString& comparisonLabel = {});
  void setMetric(RdMetric metric);
  RdMetric metric() const;
  QComboBox* metricBox() const { return m_metricBox; }

 signals:
  void metricChanged(kvq::ui::RdMetric metric);

 private:
  void redraw();
  void drawRelativeError();
  void drawAttention(bool kl);
  // A curve named name (the previous drawing's of that name, reused), styled.
  QLineSeries* line(const QString& name, const QColor& color, Qt::PenStyle style);
  // The ring around the current setting.
  QScatterSeries* ring(const QString& name);

  QComboBox* m_metricBox;
  std::shared_ptr<const kvq::StudyResult> m_study, m_comparison;
  QString m_comparisonLabel;
  int m_depth = 1;
};

}  // namespace kvq::ui
