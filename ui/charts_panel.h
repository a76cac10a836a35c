// ChartsPanel — the centre of the window: one tab per chart. It only draws what
// it is given; MainWindow decides what (study, depth, selection).
#pragma once

#include <QTabWidget>

#include <memory>

#include "channel_chart.h"
#include "kvq/study/quantize_study.h"

namespace kvq::ui {

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
  CodebookUsageChart* codebookUsage() const { return m_usage; }
  ChannelChart* channels() const { return m_channels; }
  ModelImpactView* modelImpact() const { return m_model; }

  // Writes every chart as <dir>/<stem>.<suffix>; returns the paths. Throws kvq::Error.
  QStringList exportAll(const QString& dir, const QString& suffix) const;

 private:
  RateDistortionChart* m_rd;
  DepthErrorChart* m_depth;
  LayerErrorChart* m_layers;
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
    bool operator==(const Drawn&) const = default;
  };
  Drawn m_drawn;
};

}  // namespace kvq::ui
