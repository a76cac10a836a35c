#include "attention_layer_chart.h"

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QValueAxis>

#include <algorithm>
#include <limits>
#include <memory>
#include <numeric>

#include "chart_style.h"
#include "study_queries.h"

namespace kvq::ui {
namespace {

const QColor kRvqColor(0x1f, 0x77, 0xb4);
const QColor kKiviColor(0xe6, 0x6a, 0x0a);
const QColor kComparisonColor(0x6a, 0x3d, 0x9a);

// One line of the chart: a method on every layer, one measure.
struct Line {
  QString name;
  QColor color;
  Qt::PenStyle style;
  const kvq::AttentionResult* result;
  std::string method;
  int setting;  // depth or bits
  bool kl;
};

QString headValues(const kvq::AttentionMethodResult& m, bool kl) {
  QStringList parts;
  for (size_t h = 0; h < m.perHead.size(); ++h) {
    const kvq::AttentionSums& s = m.perHead[h];
    parts << QStringLiteral("h%1 %2").arg(h).arg(kl ? s.meanKl() : s.outputRelativeError(), 0, 'g', 3);
  }
  return parts.join(QStringLiteral(", "));
}

void styleLine(QLineSeries* s, const Line& line) {
  s->setName(line.name);
  QPen pen(line.color);
  pen.setStyle(line.style);
  pen.setWidthF(2.0);
  s->setPen(pen);
  s->setPointsVisible(true);
}

}  // namespace

AttentionLayerChart::AttentionLayerChart(QWidget* parent)
    : ChartWidget(tr("Attention error by layer"), QStringLiteral("attention_by_layer"), parent) {
  showPlaceholder(tr("Train a quantizer on a dump with queries to see its attention error by layer"));
}

void AttentionLayerChart::setStudy(const kvq::StudyResult& study, int depth,
                                   const kvq::StudyResult* comparison, const QString& comparisonLabel) {
  if (!hasAttention(study)) {
    showPlaceholder(
        tr("No attention metrics in this study: the dump stores no queries, or Study → Measure "
           "Attention is off. Dump queries with the dumper's --queries (docs/dumping.md)."));
    return;
  }
  const int k = attentionDepthFor(study, depth);
  const kvq::AttentionMethodResult rvqTotal = study.attention.total("rvq", k);
  const int bits = kiviBitsNear(study, rvqTotal.bitsPerChannel);
  const kvq::AttentionMethodResult kiviTotal = study.attention.total("kivi", bits);
  beginRedraw(tr("Attention error by layer: RVQ K = %1 (%2 bits) vs KIVI-%3 (%4 bits)")
                  .arg(k)
                  .arg(rvqTotal.bitsPerChannel, 0, 'f', 2)
                  .arg(bits)
                  .arg(kiviTotal.bitsPerChannel, 0, 'f', 2));
  auto* x = styleValueAxis(reuseAxis<QValueAxis>(Qt::Horizontal), tr("layer"), QStringLiteral("%d"));
  auto* y = styleLogAxis(reuseAxis<QLogValueAxis>(Qt::Vertical),
                         tr("output error ‖o − õ‖²/‖o‖² (solid) · KL nats/query (dashed)"));
  const QString here = comparison != nullptr ? tr(" (trained here)") : QString();
  std::vector<Line> lines = {
      {tr("RVQ K = %1 output error").arg(k) + here, kRvqColor, Qt::SolidLine, &study.attention, "rvq", k,
       false},
      {tr("RVQ K = %1 KL").arg(k) + here, kRvqColor, Qt::DashLine, &study.attention, "rvq", k, true},
      {tr("KIVI-%1 output error").arg(bits), kKiviColor, Qt::SolidLine, &study.attention, "kivi", bits,
       false},
      {tr("KIVI-%1 KL").arg(bits), kKiviColor, Qt::DashLine, &study.attention, "kivi", bits, true}};
  if (comparison != nullptr && hasAttention(*comparison)) {
    const int ck = attentionDepthFor(*comparison, depth);
    const QString from = tr(" (from %1)").arg(comparisonLabel);
    lines.push_back({tr("RVQ K = %1 output error").arg(ck) + from, kComparisonColor, Qt::SolidLine,
                     &comparison->attention, "rvq", ck, false});
    lines.push_back({tr("RVQ K = %1 KL").arg(ck) + from, kComparisonColor, Qt::DashLine,
                     &comparison->attention, "rvq", ck, true});
  }
  double lo = std::numeric_limits<double>::infinity(), hi = 0, minLayer = 1e9, maxLayer = 0;
  for (size_t n = 0; n < lines.size(); ++n) {
    const Line& line = lines[n];
    auto* s = reuseSeries<QLineSeries>(QStringLiteral("line %1").arg(n));  // names change with the depth
    styleLine(s, line);
    auto texts = std::make_shared<std::vector<QString>>();
    QList<QPointF> points;
    for (const kvq::LayerAttentionResult& layer : line.result->layers) {
      const kvq::AttentionMethodResult* m = findAttention(layer, line.method, line.setting);
      if (m == nullptr) continue;
      const double v = std::max(line.kl ? m->total.meanKl() : m->total.outputRelativeError(), 1e-12);
      points.append(QPointF(layer.layer, v));
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      minLayer = std::min<double>(minLayer, layer.layer);
      maxLayer = std::max<double>(maxLayer, layer.layer);
      texts->push_back(tr("layer %1, %2 (%3 bits): %4 %5 · per head: %6")
                           .arg(layer.layer)
                           .arg(line.name)
                           .arg(m->bitsPerChannel, 0, 'f', 3)
                           .arg(line.kl ? tr("KL") : tr("output error"))
                           .arg(v, 0, 'g', 4)
                           .arg(headValues(*m, line.kl)));
    }
    s->replace(points);  // one update of the series, not one per point
    attach(s, x, y);
    onHover(s, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
  }
  // A tick on every layer measured: the layers' common spacing (4 for the sample's 0, 4, …, 28).
  int step = 0;
  for (const kvq::LayerAttentionResult& layer : study.attention.layers)
    step = std::gcd(step, layer.layer - static_cast<int>(minLayer));
  step = std::max(step, 1);
  x->setTickType(QValueAxis::TicksDynamic);
  x->setTickAnchor(minLayer);
  x->setTickInterval(step);
  x->setRange(minLayer - 0.5 * step, maxLayer + 0.5 * step);
  setLogRange(y, lo, hi);
  finishRedraw();
  setReadout(tr("%1 query tokens per layer · RoPE %2 · hover over a point for every head's value")
                 .arg(study.attention.layers.front().queryTokens)
                 .arg(QString::fromStdString(study.attention.rope)));
}

}  // namespace kvq::ui
