// ChartsPanel — the centre of the window: one tab per chart. It only draws what
// it is given; MainWindow decides what (study, depth, selection). A study chart in
// a hidden tab is drawn when its tab is shown or the chart is asked for (the
// accessors, charts(), exports), so a slider move redraws one chart, not five.
#pragma once

#include <QSet>
#include <QTabWidget>

#include <memory>

#include "channel_chart.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

class AttentionLayerChart;
class ChartWidget;
class ChannelChart;
class CodebookUsageChart;
class DepthErrorChart;
class LayerErrorChart;
class ModelImpactView;
class RateDistortionChart;

class ChartsPanel : public QTabWidget {
  Q_OBJECT

 public:
  explicit ChartsPanel(QWidget* parent = nullptr);

  // Redraws the study charts for depth (1..trained) and the selected layer/kind/head.
  void setStudy(const std::shared_ptr<const kvq::StudyResult>& study, int depth, int layer, kvq::Kind kind,
                int head);
  // Codebooks from a file evaluated on the open dump, drawn beside the study in the
  // rate–distortion and attention charts as "from <label>" (nullptr: none). Takes
  // effect at the next setStudy.
  void setComparison(std::shared_ptr<const kvq::StudyResult> comparison, const QString& label);
  const std::shared_ptr<const kvq::StudyResult>& comparison() const { return m_comparison; }
  void clearStudy();
  // A line above each study chart about what it shows ("C = 4096 is training in the
  // background…"); empty hides it.
  void setNotice(const QString& text);
  QString notice() const;
  void setChannels(const ChannelData& values, int groupSize, kvq::Grouping grouping);

  // The charts, each drawn with the current study first.
  QList<ChartWidget*> charts();
  ChartWidget* currentChart() const;
  RateDistortionChart* rateDistortion();
  DepthErrorChart* depthError();
  LayerErrorChart* layerError();
  AttentionLayerChart* attentionByLayer();
  CodebookUsageChart* codebookUsage();
  ChannelChart* channels() const { return m_channels; }
  ModelImpactView* modelImpact() const { return m_model; }
  // Study charts not drawn since the last setStudy (hidden tabs); tests count them.
  int staleCharts() const { return static_cast<int>(m_stale.size()); }

  // Writes every chart as <dir>/<stem>.<suffix>; returns the paths. Throws kvq::Error.
  QStringList exportAll(const QString& dir, const QString& suffix);

 private:
  // Draws chart with m_drawn if it is a study chart not drawn since the last setStudy.
  void drawIfStale(QWidget* chart);

  RateDistortionChart* m_rd;
  DepthErrorChart* m_depth;
  LayerErrorChart* m_layers;
  AttentionLayerChart* m_attention;
  CodebookUsageChart* m_usage;
  ChannelChart* m_channels;
  ModelImpactView* m_model;
  // What the study charts show now.
  struct Drawn {
    std::shared_ptr<const kvq::StudyResult> study;
    int depth = 0;
    int layer = 0;
    kvq::Kind kind = kvq::Kind::Keys;
    int head = -1;
    std::shared_ptr<const kvq::StudyResult> comparison;  // codebooks from a file, drawn beside
    QString comparisonLabel;
    bool operator==(const Drawn&) const = default;
  };
  Drawn m_drawn;
  QSet<QWidget*> m_stale;  // study charts that m_drawn has not been drawn on yet
  std::shared_ptr<const kvq::StudyResult> m_comparison;
  QString m_comparisonLabel;
};

}  // namespace kvq::ui
