#include "rate_distortion_chart.h"

#include <QChart>
#include <QComboBox>
#include <QLabel>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QScatterSeries>
#include <QValueAxis>

#include <algorithm>
#include <functional>
#include <limits>
#include <memory>

#include "chart_style.h"
#include "study_queries.h"

namespace kvq::ui {
namespace {

// A plotted point and what the read-out says about it.
struct Labelled {
  QPointF point;
  QString text;
};

// The axes of one drawing and the range of what was put on them.
class Plot {
 public:
  using Attach =
      std::function<void(QXYSeries*, QValueAxis*, QLogValueAxis*, std::shared_ptr<std::vector<QString>>)>;
  Plot(QValueAxis* x, QLogValueAxis* y, Attach attach) : m_x(x), m_y(y), m_attach(std::move(attach)) {}

  void add(QXYSeries* s, std::vector<Labelled> points) {
    auto texts = std::make_shared<std::vector<QString>>();
    QList<QPointF> plotted;
    plotted.reserve(static_cast<qsizetype>(points.size()));
    for (const Labelled& p : points) {
      const double err = std::max(p.point.y(), 1e-12);  // log axis: an exact 0 sits at the floor
      plotted.append(QPointF(p.point.x(), err));
      texts->push_back(p.text);
      m_lo = std::min(m_lo, err);
      m_hi = std::max(m_hi, err);
      m_maxBits = std::max(m_maxBits, p.point.x());
    }
    s->replace(plotted);  // one update of the series, not one per point
    m_attach(s, m_x, m_y, texts);
  }
  void finish() {
    m_x->setRange(0, std::max(1.0, m_maxBits * 1.08));
    m_x->applyNiceNumbers();
    setLogRange(m_y, m_lo, m_hi);
  }

 private:
  QValueAxis* m_x;
  QLogValueAxis* m_y;
  Attach m_attach;
  double m_lo = std::numeric_limits<double>::infinity(), m_hi = 0, m_maxBits = 0;
};

QString pointText(const QString& method, kvq::Kind kind, const QString& setting, double bits,
                  const kvq::ErrorSums& e) {
  return QObject::tr("%1 %2, %3: %4 bits/channel (ratio %5×) · relative error %6 · SNR %7 dB · cos %8")
      .arg(method, kindLabel(kind), setting)
      .arg(bits, 0, 'f', 3)
      .arg(16.0 / bits, 0, 'f', 2)
      .arg(e.relativeError(), 0, 'g', 4)
      .arg(e.snrDb(), 0, 'f', 2)
      .arg(e.meanCosine(), 0, 'f', 4);
}

QString attentionText(const QString& label, const kvq::AttentionMethodResult& m, int topK, size_t layers) {
  const kvq::AttentionSums& s = m.total;
  return QObject::tr(
             "%1: %2 bits/channel (ratio %3×) · attention output error %4 · KL %5 nats/query · logit "
             "error %6 · top-%7 recall %8 · %9 layers")
      .arg(label)
      .arg(m.bitsPerChannel, 0, 'f', 3)
      .arg(16.0 / m.bitsPerChannel, 0, 'f', 2)
      .arg(s.outputRelativeError(), 0, 'g', 4)
      .arg(s.meanKl(), 0, 'g', 4)
      .arg(s.logitRelativeError(), 0, 'g', 4)
      .arg(topK)
      .arg(s.massRecall(), 0, 'f', 3)
      .arg(layers);
}

// Styles s (a new or a reused series) as a curve.
QLineSeries* lineSeries(QLineSeries* s, const QString& name, const QColor& color, Qt::PenStyle style) {
  s->setName(name);
  QPen pen = s->pen();
  pen.setColor(color);
  pen.setStyle(style);
  pen.setWidthF(2.0);
  s->setPen(pen);
  s->setColor(color);
  s->setPointsVisible(true);
  return s;
}

// Styles current (a new or a reused series) as the ring around the current setting.
QScatterSeries* currentRing(QScatterSeries* current, const QString& name) {
  current->setName(name);
  current->setMarkerSize(16);
  current->setColor(Qt::transparent);
  current->setBorderColor(QColor(0xc0, 0x10, 0x30));
  QPen ring(QColor(0xc0, 0x10, 0x30));
  ring.setWidth(3);
  current->setPen(ring);
  return current;
}

const QColor kComparisonColor(0x6a, 0x3d, 0x9a);  // purple: codebooks from a file

}  // namespace

RateDistortionChart::RateDistortionChart(QWidget* parent)
    : ChartWidget(tr("Rate–distortion"), QStringLiteral("rate_distortion"), parent),
      m_metricBox(new QComboBox(this)) {
  auto* label = new QLabel(tr("y axis:"), this);
  m_metricBox->addItem(tr("relative error (MSE) of keys and values"));
  m_metricBox->addItem(tr("attention-output relative error"));
  m_metricBox->addItem(tr("attention KL (nats per query)"));
  m_metricBox->setToolTip(tr("What the chart plots against bits per channel (docs/metrics.md)"));
  addControl(label);
  addControl(m_metricBox);
  connect(m_metricBox, &QComboBox::currentIndexChanged, this, [this](int index) {
    redraw();
    emit metricChanged(static_cast<RdMetric>(index));
  });
  showPlaceholder(tr("Train a quantizer to see its rate–distortion curve"));
}

QString RateDistortionChart::fileStem() const {
  switch (metric()) {
    case RdMetric::AttentionOutput:
      return ChartWidget::fileStem() + QStringLiteral("_attention_output");
    case RdMetric::AttentionKl:
      return ChartWidget::fileStem() + QStringLiteral("_attention_kl");
    case RdMetric::RelativeError:
      break;
  }
  return ChartWidget::fileStem();
}

void RateDistortionChart::setStudy(std::shared_ptr<const kvq::StudyResult> study, int depth,
                                   std::shared_ptr<const kvq::StudyResult> comparison,
                                   const QString& comparisonLabel) {
  m_study = std::move(study);
  m_comparison = std::move(comparison);
  m_comparisonLabel = comparisonLabel;
  m_depth = depth;
  redraw();
}

void RateDistortionChart::setMetric(RdMetric metric) {
  m_metricBox->setCurrentIndex(static_cast<int>(metric));
}

RdMetric RateDistortionChart::metric() const {
  return static_cast<RdMetric>(std::max(0, m_metricBox->currentIndex()));
}

void RateDistortionChart::redraw() {
  if (!m_study) {
    showPlaceholder(tr("Train a quantizer to see its rate–distortion curve"));
    return;
  }
  if (metric() == RdMetric::RelativeError) {
    drawRelativeError();
  } else if (!hasAttention(*m_study)) {
    showPlaceholder(
        tr("No attention metrics in this study: the dump stores no queries, or Study → Measure "
           "Attention is off. Dump queries with the dumper's --queries (docs/dumping.md)."));
  } else {
    drawAttention(metric() == RdMetric::AttentionKl);
  }
}

QLineSeries* RateDistortionChart::line(const QString& name, const QColor& color, Qt::PenStyle style) {
  return lineSeries(reuseSeries<QLineSeries>(name), name, color, style);
}

QScatterSeries* RateDistortionChart::ring(const QString& name) {
  return currentRing(reuseSeries<QScatterSeries>(QStringLiteral("current")), name);
}

void RateDistortionChart::drawRelativeError() {
  const kvq::StudyResult& study = *m_study;
  beginRedraw(tr("Rate–distortion (C = %1, g = %2, %3 held-out tokens)")
                  .arg(study.config.codebookSize)
                  .arg(study.config.groupSize)
                  .arg(study.split.heldOutTokens));
  Plot plot(
      styleValueAxis(reuseAxis<QValueAxis>(Qt::Horizontal), tr("bits per channel"), QStringLiteral("%.2f")),
      styleLogAxis(reuseAxis<QLogValueAxis>(Qt::Vertical), tr("relative error ‖x − x̃‖² / ‖x‖²")),
      [this](QXYSeries* s, auto* x, auto* y, auto texts) {
        attach(s, x, y);
        onHover(s, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
      });
  const int K = trainedDepth(study);
  const int depth = std::clamp(m_depth, 1, std::max(K, 1));
  const QString here = m_comparison ? tr(" (trained here)") : QString();
  std::vector<Labelled> currentPoints;
  for (const kvq::Kind kind : studyKinds(study)) {
    auto rvqPoints = [&](const kvq::StudyResult& s, const QString& what) {
      std::vector<Labelled> points;
      for (int k = 1; k <= trainedDepth(s); ++k) {
        const kvq::ErrorSums e = s.total(k, &kind);
        const double bits = studyBitsPerChannel(s, k);
        points.push_back(
            {QPointF(bits, e.relativeError()), pointText(what, kind, tr("K = %1").arg(k), bits, e)});
      }
      return points;
    };
    std::vector<Labelled> points = rvqPoints(study, tr("RVQ") + here);
    if (depth <= static_cast<int>(points.size()))
      currentPoints.push_back(points[static_cast<size_t>(depth - 1)]);
    plot.add(line(tr("RVQ %1").arg(kindLabel(kind)) + here, kindColor(kind), Qt::SolidLine),
             std::move(points));
    const std::vector<kvq::Kind> compared =
        m_comparison ? studyKinds(*m_comparison) : std::vector<kvq::Kind>{};
    if (std::find(compared.begin(), compared.end(), kind) != compared.end()) {
      const QString from = tr(" (from %1)").arg(m_comparisonLabel);
      plot.add(line(tr("RVQ %1").arg(kindLabel(kind)) + from,
                    kind == kvq::Kind::Keys ? kComparisonColor : kComparisonColor.lighter(140), Qt::DotLine),
               rvqPoints(*m_comparison, tr("RVQ") + from));
    }
    if (study.baselineBits.empty()) continue;
    std::vector<Labelled> bpoints;
    for (size_t i = 0; i < study.baselineBits.size(); ++i) {
      const kvq::ErrorSums e = baselineTotal(study, kind, i);
      const double bits = baselineBitsPerChannel(study, kind, i);
      bpoints.push_back({QPointF(bits, e.relativeError()),
                         pointText(tr("KIVI"), kind, tr("%1-bit").arg(study.baselineBits[i]), bits, e)});
    }
    std::sort(bpoints.begin(), bpoints.end(),
              [](const Labelled& a, const Labelled& b) { return a.point.x() < b.point.x(); });
    plot.add(line(tr("KIVI %1").arg(kindLabel(kind)), baselineColor(kind), Qt::DashLine), std::move(bpoints));
  }
  plot.add(ring(tr("current (K = %1)").arg(depth)), std::move(currentPoints));
  plot.finish();
  finishRedraw();
  setReadout(
      tr("%1 · hover over a point for bits, ratio and error").arg(QString::fromStdString(study.backendName)));
}

void RateDistortionChart::drawAttention(bool kl) {
  const kvq::StudyResult& study = *m_study;
  const kvq::AttentionResult& a = study.attention;
  beginRedraw(tr("Attention %1 vs bits (%2 layers with queries, %3 query tokens per layer)")
                  .arg(kl ? tr("KL") : tr("output error"))
                  .arg(a.layers.size())
                  .arg(a.layers.front().queryTokens));
  Plot plot(styleValueAxis(reuseAxis<QValueAxis>(Qt::Horizontal), tr("bits per channel (keys and values)"),
                           QStringLiteral("%.2f")),
            styleLogAxis(reuseAxis<QLogValueAxis>(Qt::Vertical),
                         kl ? tr("KL(p ‖ p̃), nats per query") : tr("attention output error ‖o − õ‖² / ‖o‖²")),
            [this](QXYSeries* s, auto* x, auto* y, auto texts) {
              attach(s, x, y);
              onHover(s, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
            });
  auto value = [kl](const kvq::AttentionMethodResult& m) {
    return kl ? m.total.meanKl() : m.total.outputRelativeError();
  };
  auto curve = [&](const kvq::AttentionResult& r, const std::string& method, const std::vector<int>& settings,
                   const QString& label) {
    std::vector<Labelled> points;
    for (int n : settings) {
      const kvq::AttentionMethodResult m = r.total(method, n);
      if (m.total.queries == 0) continue;
      const QString what =
          method == "rvq" ? tr("%1 K = %2").arg(label).arg(n) : tr("%1-%2").arg(label).arg(n);
      points.push_back(
          {QPointF(m.bitsPerChannel, value(m)), attentionText(what, m, r.options.topK, r.layers.size())});
    }
    std::sort(points.begin(), points.end(),
              [](const Labelled& x, const Labelled& y) { return x.point.x() < y.point.x(); });
    return points;
  };
  const QString here = m_comparison ? tr(" (trained here)") : QString();
  plot.add(line(tr("RVQ") + here, kindColor(kvq::Kind::Keys), Qt::SolidLine),
           curve(a, "rvq", attentionDepths(study), tr("RVQ") + here));
  if (m_comparison && hasAttention(*m_comparison)) {
    const QString from = tr(" (from %1)").arg(m_comparisonLabel);
    plot.add(line(tr("RVQ") + from, kComparisonColor, Qt::DotLine),
             curve(m_comparison->attention, "rvq", attentionDepths(*m_comparison), tr("RVQ") + from));
  }
  plot.add(line(tr("KIVI"), kindColor(kvq::Kind::Values), Qt::DashLine),
           curve(a, "kivi", study.baselineBits, tr("KIVI")));
  if (a.options.kiviWindow) {
    plot.add(line(tr("KIVI + window of %1").arg(a.options.recentWindow), baselineColor(kvq::Kind::Values),
                  Qt::DashDotLine),
             curve(a, "kivi-window", study.baselineBits, tr("KIVI + window")));
  }
  const int shown = attentionDepthFor(study, m_depth);
  plot.add(ring(tr("current (K = %1)").arg(shown)), curve(a, "rvq", {shown}, tr("RVQ")));
  plot.finish();
  finishRedraw();
  setReadout(tr("RoPE %1 · hover over a point for bits and every attention number")
                 .arg(QString::fromStdString(a.rope)));
}

}  // namespace kvq::ui
