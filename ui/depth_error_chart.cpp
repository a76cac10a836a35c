#include "depth_error_chart.h"

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QScatterSeries>
#include <QValueAxis>

#include <algorithm>
#include <limits>

#include "chart_style.h"
#include "study_queries.h"

namespace kvq::ui {

DepthErrorChart::DepthErrorChart(QWidget* parent)
    : ChartWidget(tr("Error by depth"), QStringLiteral("error_by_depth"), parent) {
  showPlaceholder(tr("Train a quantizer to see the error after each stage"));
}

void DepthErrorChart::setStudy(const kvq::StudyResult& study, int layer, int depth) {
  const int K = trainedDepth(study);
  const std::vector<kvq::Kind> kinds = studyKinds(study);
  if (std::none_of(kinds.begin(), kinds.end(),
                   [&](kvq::Kind kind) { return findJob(study, layer, kind) != nullptr; })) {
    showPlaceholder(tr("Layer %1 was not trained in this study").arg(layer));
    return;
  }
  beginRedraw(tr("Error by depth — layer %1").arg(layer));
  auto* x =
      styleValueAxis(reuseAxis<QValueAxis>(Qt::Horizontal), tr("depth K (stages)"), QStringLiteral("%d"));
  auto* y = styleLogAxis(reuseAxis<QLogValueAxis>(Qt::Vertical), tr("relative error"));
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  QList<QPointF> currentPoints;
  QStringList currentTexts;
  for (const kvq::Kind kind : kinds) {
    const kvq::LayerKindResult* job = findJob(study, layer, kind);
    if (job == nullptr) continue;
    auto* s = reuseSeries<QLineSeries>(kindLabel(kind));
    s->setName(kindLabel(kind));
    s->setColor(kindColor(kind));
    s->setPointsVisible(true);
    QList<QPointF> points;
    QStringList texts;
    for (int k = 1; k <= static_cast<int>(job->byDepth.size()); ++k) {
      const kvq::ErrorSums& e = job->byDepth[static_cast<size_t>(k - 1)];
      const double err = std::max(e.relativeError(), 1e-12);
      points.append(QPointF(k, err));
      lo = std::min(lo, err);
      hi = std::max(hi, err);
      const QString text = tr("layer %1 %2, K = %3: relative error %4 · SNR %5 dB · %6 bits/channel")
                               .arg(layer)
                               .arg(kindLabel(kind))
                               .arg(k)
                               .arg(e.relativeError(), 0, 'g', 4)
                               .arg(e.snrDb(), 0, 'f', 2)
                               .arg(studyBitsPerChannel(study, k), 0, 'f', 3);
      texts << text;
      if (k == depth) {
        currentPoints.append(QPointF(k, err));
        currentTexts << text;
      }
    }
    s->replace(points);  // one update of the series, not one per point
    attach(s, x, y);
    onHover(s, [texts](int i) { return texts.value(i); });
  }
  auto* current = reuseSeries<QScatterSeries>(QStringLiteral("current"));
  current->setName(tr("current (K = %1)").arg(depth));
  current->setMarkerSize(14);
  current->setColor(Qt::transparent);
  QPen ring(QColor(0xc0, 0x10, 0x30));
  ring.setWidth(3);
  current->setPen(ring);
  current->replace(currentPoints);
  attach(current, x, y);
  onHover(current, [currentTexts](int i) { return currentTexts.value(i); });
  x->setRange(0.5, K + 0.5);
  x->setTickType(QValueAxis::TicksDynamic);
  x->setTickAnchor(1);
  x->setTickInterval(K > 16 ? 2 : 1);
  setLogRange(y, lo, hi);
  finishRedraw();
  setReadout(tr("Layer %1: one training at K = %2 gives every depth ≤ %2").arg(layer).arg(K));
}

}  // namespace kvq::ui
