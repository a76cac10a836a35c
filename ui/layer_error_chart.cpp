#include "layer_error_chart.h"

#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QValueAxis>

#include <algorithm>

#include "chart_style.h"
#include "study_queries.h"

namespace kvq::ui {

LayerErrorChart::LayerErrorChart(QWidget* parent)
    : ChartWidget(tr("Error by layer"), QStringLiteral("error_by_layer"), parent) {
  showPlaceholder(tr("Train a quantizer to compare layers"));
}

void LayerErrorChart::setStudy(const kvq::StudyResult& study, int depth) {
  const std::vector<int> layers = studyLayers(study);
  beginRedraw(tr("Relative error by layer (K = %1)").arg(depth));
  auto* x = reuseAxis<QBarCategoryAxis>(Qt::Horizontal);
  x->setTitleText(tr("layer"));
  QStringList categories;
  for (int layer : layers) categories << QString::number(layer);
  if (x->categories() != categories) x->setCategories(categories);
  auto* y = styleValueAxis(reuseAxis<QValueAxis>(Qt::Vertical), tr("relative error"));
  auto* bars = reuseSeries<QBarSeries>(QStringLiteral("bars"));  // its old sets deleted
  double hi = 0;
  for (const kvq::Kind kind : studyKinds(study)) {
    auto* set = new QBarSet(kindLabel(kind));
    set->setColor(kindColor(kind));
    set->setBorderColor(kindColor(kind).darker(130));
    for (int layer : layers) {
      const kvq::LayerKindResult* job = findJob(study, layer, kind);
      const int k = job ? std::clamp(depth, 1, static_cast<int>(job->byDepth.size())) : 0;
      const double err = job ? job->byDepth[static_cast<size_t>(k - 1)].relativeError() : 0.0;
      set->append(err);
      hi = std::max(hi, err);
    }
    connect(set, &QBarSet::hovered, this, [this, set, layers, kind, depth](bool state, int index) {
      if (!state || index < 0 || index >= static_cast<int>(layers.size())) return;
      setReadout(tr("layer %1 %2, K = %3: relative error %4")
                     .arg(layers[static_cast<size_t>(index)])
                     .arg(kindLabel(kind))
                     .arg(depth)
                     .arg(set->at(index), 0, 'g', 4));
    });
    bars->append(set);  // the series owns the set
  }
  attach(bars, x, y);
  y->setRange(0, hi > 0 ? hi * 1.1 : 1.0);
  y->applyNiceNumbers();
  finishRedraw();
  setReadout(tr("%1 layers · hover over a bar for its error").arg(layers.size()));
}

}  // namespace kvq::ui
