// ChartsPanel — the centre of the window: one tab per chart. It only draws what
// it is given; MainWindow decides what (study, depth, selection).
#pragma once

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

  QList<ChartWidget*> charts() const;
  ChartWidget* currentChart() const;
  RateDistortionChart* rateDistortion() const { return m_rd; }
  DepthErrorChart* depthError() const { return m_depth; }
  LayerErrorChart* layerError() const { return m_layers; }
  AttentionLayerChart* attentionByLayer() const { return m_attention; }
  CodebookUsageChart* codebookUsage() const { return m_usage; }
  ChannelChart* channels() const { return m_channels; }
  ModelImpactView* modelImpact() const { return m_model; }

  // Writes every chart as <dir>/<stem>.<suffix>; returns the paths. Throws kvq::Error.
  QStringList exportAll(const QString& dir, const QString& suffix) const;

 private:
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
  std::shared_ptr<const kvq::StudyResult> m_comparison;
  QString m_comparisonLabel;
};

}  // namespace kvq::ui
