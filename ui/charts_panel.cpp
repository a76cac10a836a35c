#include "charts_panel.h"

#include <QDir>

#include "allocation_chart.h"
#include "attention_layer_chart.h"
#include "channel_chart.h"
#include "chart_export.h"
#include "codebook_usage_chart.h"
#include "depth_error_chart.h"
#include "layer_error_chart.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"
#include "rate_distortion_chart.h"

namespace kvq::ui {

ChartsPanel::ChartsPanel(QWidget* parent)
    : QTabWidget(parent),
      m_rd(new RateDistortionChart(this)),
      m_depth(new DepthErrorChart(this)),
      m_layers(new LayerErrorChart(this)),
      m_attention(new AttentionLayerChart(this)),
      m_usage(new CodebookUsageChart(this)),
      m_channels(new ChannelChart(this)),
      m_model(new ModelImpactView(this)) {
  setDocumentMode(true);
  addTab(m_rd, tr("Rate–distortion"));
  addTab(m_depth, tr("Error by depth"));
  addTab(m_layers, tr("Error by layer"));
  addTab(m_attention, tr("Attention error by layer"));
  addTab(m_usage, tr("Codebook usage"));
  addTab(m_channels, tr("Channels"));
  addTab(m_model, tr("Model impact"));
  setTabToolTip(0,
                tr("Bits per channel vs relative error, attention-output error or attention KL: RVQ at every "
                   "depth and the KIVI scalar baselines"));
  setTabToolTip(1, tr("Error of the selected layer after each residual stage"));
  setTabToolTip(2, tr("Relative error of keys and values in every trained layer"));
  setTabToolTip(
      3, tr("Attention-output error and KL of RVQ and KIVI at equal bits in every layer with queries"));
  setTabToolTip(4, tr("How evenly each stage's codebook entries are used on held-out tokens"));
  setTabToolTip(5, tr("Mean and max |x| per channel with the channel groups marked"));
  setTabToolTip(6, tr("Perplexity and KL of the model with the quantized cache, against bits per channel"));
  connect(this, &QTabWidget::currentChanged, this, [this](int index) { drawIfStale(widget(index)); });
}

void ChartsPanel::setStudy(const std::shared_ptr<const kvq::StudyResult>& study, int depth, int layer,
                           kvq::Kind kind, int head) {
  if (!study || study->jobs.empty()) {
    clearStudy();
    return;
  }
  // The same picture again (a settings change answered by the study already shown):
  // nothing to rebuild, so the UI thread stays free.
  const Drawn drawn{study, depth, layer, kind, head, m_comparison, m_comparisonLabel};
  if (drawn == m_drawn) return;
  m_drawn = drawn;
  m_stale = {m_rd, m_depth, m_layers, m_attention, m_usage};
  drawIfStale(currentWidget());
}

void ChartsPanel::drawIfStale(QWidget* chart) {
  if (!m_stale.remove(chart)) return;
  const Drawn& d = m_drawn;
  if (chart == m_rd) {
    m_rd->setStudy(d.study, d.depth, d.comparison, d.comparisonLabel);
  } else if (chart == m_depth) {
    m_depth->setStudy(*d.study, d.layer, d.depth);
  } else if (chart == m_layers) {
    m_layers->setStudy(*d.study, d.depth);
  } else if (chart == m_attention) {
    m_attention->setStudy(*d.study, d.depth, d.comparison.get(), d.comparisonLabel);
  } else if (chart == m_usage) {
    m_usage->setStudy(*d.study, d.layer, d.kind, d.head, d.depth);
  }
}

RateDistortionChart* ChartsPanel::rateDistortion() {
  drawIfStale(m_rd);
  return m_rd;
}

DepthErrorChart* ChartsPanel::depthError() {
  drawIfStale(m_depth);
  return m_depth;
}

LayerErrorChart* ChartsPanel::layerError() {
  drawIfStale(m_layers);
  return m_layers;
}

AttentionLayerChart* ChartsPanel::attentionByLayer() {
  drawIfStale(m_attention);
  return m_attention;
}

CodebookUsageChart* ChartsPanel::codebookUsage() {
  drawIfStale(m_usage);
  return m_usage;
}

void ChartsPanel::setComparison(std::shared_ptr<const kvq::StudyResult> comparison, const QString& label) {
  m_comparison = std::move(comparison);
  m_comparisonLabel = label;
}

void ChartsPanel::clearStudy() {
  m_drawn = {};
  m_stale.clear();
  m_rd->setStudy(nullptr, 1);
  m_rd->showPlaceholder(tr("Train a quantizer (Ctrl+T) to see its rate–distortion curve"));
  m_attention->showPlaceholder(
      tr("Train a quantizer on a dump with queries to see its attention error by layer"));
  m_depth->showPlaceholder(tr("Train a quantizer to see the error after each stage"));
  m_layers->showPlaceholder(tr("Train a quantizer to compare layers"));
  m_usage->showPlaceholder(tr("Train a quantizer to see how its codebook entries are used"));
}

void ChartsPanel::setNotice(const QString& text) {
  for (ChartWidget* chart : {static_cast<ChartWidget*>(m_rd), static_cast<ChartWidget*>(m_depth),
                             static_cast<ChartWidget*>(m_layers), static_cast<ChartWidget*>(m_usage)})
    chart->setNotice(text);
}

QString ChartsPanel::notice() const {
  return m_rd->notice();
}

void ChartsPanel::setChannels(const ChannelData& values, int groupSize, kvq::Grouping grouping) {
  m_channels->setData(values, groupSize, grouping);
}

QList<ChartWidget*> ChartsPanel::charts() {
  for (QWidget* chart : QList<QWidget*>(m_stale.begin(), m_stale.end())) drawIfStale(chart);
  return {m_rd,    m_depth,    m_layers,         m_attention,
          m_usage, m_channels, m_model->chart(), m_model->allocationChart()};
}

ChartWidget* ChartsPanel::currentChart() const {
  if (currentWidget() == m_model) return m_model->chart();
  return qobject_cast<ChartWidget*>(currentWidget());
}

QStringList ChartsPanel::exportAll(const QString& dir, const QString& suffix) {
  QStringList written;
  for (ChartWidget* chart : charts()) {
    const QString path = QDir(dir).filePath(chart->fileStem() + QLatin1Char('.') + suffix);
    exportWidgetImage(chart, path);
    written << path;
  }
  return written;
}

}  // namespace kvq::ui
