#include "rate_distortion_chart.h"

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QScatterSeries>
#include <QValueAxis>

#include <algorithm>
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

}  // namespace

RateDistortionChart::RateDistortionChart(QWidget* parent) : ChartWidget(tr("Rate–distortion"), parent) {
  showPlaceholder(tr("Train a quantizer to see its rate–distortion curve"));
}

void RateDistortionChart::setStudy(const kvq::StudyResult& study, int depth) {
  resetChart(tr("Rate–distortion (C = %1, g = %2, %3 held-out tokens)")
                 .arg(study.config.codebookSize)
                 .arg(study.config.groupSize)
                 .arg(study.split.heldOutTokens));
  auto* x = makeValueAxis(tr("bits per channel"), QStringLiteral("%.2f"));
  auto* y = makeLogAxis(tr("relative error ‖x − x̃‖² / ‖x‖²"));
  double lo = std::numeric_limits<double>::infinity(), hi = 0, maxBits = 0;
  const int K = trainedDepth(study);
  depth = std::clamp(depth, 1, std::max(K, 1));

  auto add = [&](QXYSeries* s, std::vector<Labelled> points) {
    auto texts = std::make_shared<std::vector<QString>>();
    for (const Labelled& p : points) {
      const double err = std::max(p.point.y(), 1e-12);
      s->append(p.point.x(), err);
      texts->push_back(p.text);
      lo = std::min(lo, err);
      hi = std::max(hi, err);
      maxBits = std::max(maxBits, p.point.x());
    }
    attach(s, x, y);
    onHover(s, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
  };

  auto* current = new QScatterSeries;
  std::vector<Labelled> currentPoints;
  for (const kvq::Kind kind : studyKinds(study)) {
    auto* rvq = new QLineSeries;
    rvq->setName(tr("RVQ %1").arg(kindLabel(kind)));
    rvq->setColor(kindColor(kind));
    rvq->setPointsVisible(true);
    std::vector<Labelled> points;
    for (int k = 1; k <= K; ++k) {
      const kvq::ErrorSums e = study.total(k, &kind);
      const double bits = studyBitsPerChannel(study, k);
      points.push_back(
          {QPointF(bits, e.relativeError()), pointText(tr("RVQ"), kind, tr("K = %1").arg(k), bits, e)});
      if (k == depth) currentPoints.push_back(points.back());
    }
    add(rvq, std::move(points));

    if (!study.baselineBits.empty()) {
      auto* kivi = new QLineSeries;
      kivi->setName(tr("KIVI %1").arg(kindLabel(kind)));
      kivi->setColor(baselineColor(kind));
      QPen pen = kivi->pen();
      pen.setStyle(Qt::DashLine);
      pen.setColor(baselineColor(kind));
      kivi->setPen(pen);
      kivi->setPointsVisible(true);
      std::vector<Labelled> bpoints;
      for (size_t i = 0; i < study.baselineBits.size(); ++i) {
        const kvq::ErrorSums e = baselineTotal(study, kind, i);
        const double bits = baselineBitsPerChannel(study, kind, i);
        bpoints.push_back({QPointF(bits, e.relativeError()),
                           pointText(tr("KIVI"), kind, tr("%1-bit").arg(study.baselineBits[i]), bits, e)});
      }
      std::sort(bpoints.begin(), bpoints.end(),
                [](const Labelled& a, const Labelled& b) { return a.point.x() < b.point.x(); });
      add(kivi, std::move(bpoints));
    }
  }
  current->setName(tr("current (K = %1)").arg(depth));
  current->setMarkerSize(16);
  current->setColor(Qt::transparent);
  current->setBorderColor(QColor(0xc0, 0x10, 0x30));
  QPen ring(QColor(0xc0, 0x10, 0x30));
  ring.setWidth(3);
  current->setPen(ring);
  add(current, std::move(currentPoints));

  x->setRange(0, std::max(1.0, maxBits * 1.08));
  x->applyNiceNumbers();
  setLogRange(y, lo, hi);
  setReadout(
      tr("%1 · hover over a point for bits, ratio and error").arg(QString::fromStdString(study.backendName)));
}

}  // namespace kvq::ui
