#include "model_impact_chart.h"

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QValueAxis>

#include <algorithm>
#include <limits>
#include <memory>

#include "chart_style.h"

namespace kvq::ui {
namespace {

QString variantText(const kvq::VariantReport& v, double referencePpl) {
  return QObject::tr("%1: %2 bits/channel · perplexity %3 (reference %4) · KL %5 nats/token · top-1 %6 %")
      .arg(QString::fromStdString(v.label))
      .arg(v.bitsPerChannel, 0, 'f', 3)
      .arg(v.overall.perplexity(), 0, 'f', 3)
      .arg(referencePpl, 0, 'f', 3)
      .arg(v.overall.meanKl(), 0, 'g', 4)
      .arg(100.0 * v.overall.top1Rate(), 0, 'f', 1);
}

}  // namespace

ModelImpactChart::ModelImpactChart(QWidget* parent)
    : ChartWidget(tr("Model impact"), QStringLiteral("model_impact"), parent) {
  showPlaceholder(tr("Choose the dump's GGUF model and run it to see what the quantized cache costs"));
}

void ModelImpactChart::setReport(const kvq::PplReport& report) {
  resetChart(tr("Model impact (%1, %2 quantized layers, %3 predicted tokens)")
                 .arg(QString::fromStdString(report.modelName))
                 .arg(report.layers.size())
                 .arg(report.reference.tokens));
  auto* x = makeValueAxis(tr("bits per channel"), QStringLiteral("%.2f"));
  auto* ppl = makeValueAxis(tr("perplexity"), QStringLiteral("%.2f"));
  auto* kl = makeLogAxis(tr("mean KL(p_ref ‖ p_q), nats"));
  chart()->addAxis(kl, Qt::AlignRight);  // before attach(), which puts new y axes on the left
  const double refPpl = report.reference.perplexity();
  double maxBits = 1, pplHi = refPpl, klLo = std::numeric_limits<double>::infinity(), klHi = 0;
  for (const bool rvq : {true, false}) {
    std::vector<const kvq::VariantReport*> points;
    for (const kvq::VariantReport& v : report.variants) {
      if ((v.spec.kind == kvq::CacheVariantKind::Rvq) == rvq &&
          v.spec.kind != kvq::CacheVariantKind::Identity) {
        points.push_back(&v);
      }
    }
    if (points.empty()) continue;
    std::sort(points.begin(), points.end(),
              [](auto* a, auto* b) { return a->bitsPerChannel < b->bitsPerChannel; });
    const QString method = rvq ? tr("RVQ") : tr("KIVI");
    auto* pSeries = new QLineSeries;
    auto* kSeries = new QLineSeries;
    pSeries->setName(tr("%1 perplexity").arg(method));
    kSeries->setName(tr("%1 KL").arg(method));
    const QColor color = rvq ? kindColor(kvq::Kind::Keys) : kindColor(kvq::Kind::Values);
    pSeries->setColor(color);
    QPen dashed(color);
    dashed.setStyle(Qt::DashLine);
    dashed.setWidth(2);
    kSeries->setPen(dashed);
    auto texts = std::make_shared<std::vector<QString>>();
    for (const kvq::VariantReport* v : points) {
      const double klValue = std::max(v->overall.meanKl(), 1e-9);
      pSeries->append(v->bitsPerChannel, v->overall.perplexity());
      kSeries->append(v->bitsPerChannel, klValue);
      texts->push_back(variantText(*v, refPpl));
      maxBits = std::max(maxBits, v->bitsPerChannel);
      pplHi = std::max(pplHi, v->overall.perplexity());
      klLo = std::min(klLo, klValue);
      klHi = std::max(klHi, klValue);
    }
    for (QLineSeries* s : {pSeries, kSeries}) s->setPointsVisible(true);
    attach(pSeries, x, ppl);
    attach(kSeries, x, kl);
    onHover(pSeries, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
    onHover(kSeries, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
  }
  auto* reference = new QLineSeries;
  reference->setName(tr("reference (float32 cache) %1").arg(refPpl, 0, 'f', 3));
  QPen dotted(Qt::darkGray);
  dotted.setStyle(Qt::DotLine);
  reference->setPen(dotted);
  reference->append(0, refPpl);
  reference->append(maxBits * 1.08, refPpl);
  attach(reference, x, ppl);
  x->setRange(0, maxBits * 1.08);
  x->applyNiceNumbers();
  ppl->setRange(refPpl * 0.98, pplHi * 1.02);
  if (klHi > 0) setLogRange(kl, klLo, klHi);
  setReadout(tr("reference perplexity %1 over %2 tokens · hover over a point for its numbers")
                 .arg(refPpl, 0, 'f', 3)
                 .arg(report.reference.tokens));
}

}  // namespace kvq::ui
