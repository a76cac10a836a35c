#include "codebook_usage_chart.h"

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QValueAxis>

#include <algorithm>
#include <functional>

#include "chart_style.h"
#include "study_queries.h"

namespace kvq::ui {
namespace {

constexpr size_t kMaxPoints = 2048;   // per stage curve
constexpr size_t kDenseRanks = 1024;  // ranks always drawn one by one

// Ranks 0..used-1 drawn: all of them up to kMaxPoints; else the first kDenseRanks,
// an evenly spaced subset and the last.
std::vector<size_t> plottedRanks(size_t used) {
  std::vector<size_t> ranks;
  if (used <= kMaxPoints) {
    for (size_t r = 0; r < used; ++r) ranks.push_back(r);
    return ranks;
  }
  for (size_t r = 0; r < kDenseRanks; ++r) ranks.push_back(r);
  const size_t step = (used - kDenseRanks + (kMaxPoints - kDenseRanks) - 1) / (kMaxPoints - kDenseRanks);
  for (size_t r = kDenseRanks; r < used; r += step) ranks.push_back(r);
  if (ranks.back() != used - 1) ranks.push_back(used - 1);
  return ranks;
}

}  // namespace

CodebookUsageChart::CodebookUsageChart(QWidget* parent)
    : ChartWidget(tr("Codebook usage"), QStringLiteral("codebook_usage"), parent) {
  showPlaceholder(tr("Train a quantizer to see how its codebook entries are used"));
}

void CodebookUsageChart::setStudy(const kvq::StudyResult& study, int layer, kvq::Kind kind, int head,
                                  int depth) {
  const kvq::LayerKindResult* job = findJob(study, layer, kind);
  if (job == nullptr || job->quantizers.empty()) {
    showPlaceholder(tr("Layer %1 %2 was not trained in this study").arg(layer).arg(kindLabel(kind)));
    return;
  }
  size_t q = 0;
  if (job->quantizers.size() > 1 && head >= 0 && static_cast<size_t>(head) < job->quantizers.size()) {
    q = static_cast<size_t>(head);
  }
  const kvq::QuantizerResult& quantizer = job->quantizers[q];
  const int C = study.config.codebookSize;
  const QString whose = quantizer.head >= 0 ? tr(", head %1").arg(quantizer.head) : QString();
  beginRedraw(tr("Codebook usage — layer %1 %2%3 (C = %4)").arg(layer).arg(kindLabel(kind), whose).arg(C));
  auto* x = styleValueAxis(reuseAxis<QValueAxis>(Qt::Horizontal), tr("entry rank (most used first)"),
                           QStringLiteral("%d"));
  auto* y = styleLogAxis(reuseAxis<QLogValueAxis>(Qt::Vertical), tr("share of vectors"));
  double lo = 1.0, hi = 0.0;
  const int stages = std::min(depth, static_cast<int>(quantizer.usage.size()));
  for (int k = 0; k < stages; ++k) {
    const kvq::StageUsage& usage = quantizer.usage[static_cast<size_t>(k)];
    std::vector<int64_t> counts = usage.histogram;
    std::sort(counts.begin(), counts.end(), std::greater<>());
    auto* s = reuseSeries<QLineSeries>(QStringLiteral("stage %1").arg(k + 1));
    s->setName(tr("stage %1 · perplexity %2 · dead %3")
                   .arg(k + 1)
                   .arg(usage.perplexity, 0, 'f', 0)
                   .arg(usage.deadEntries));
    s->setColor(groupColor(k, std::max(stages, 1)));
    // Dead entries (count 0) have no place on a log axis: the curve ends at the last used rank.
    // Large codebooks: every rank below kDenseRanks, then an evenly spaced subset
    // and the last used rank (a monotone curve loses nothing visible).
    size_t used = 0;
    while (used < counts.size() && counts[used] > 0) ++used;
    QList<QPointF> points;
    for (const size_t r : plottedRanks(used)) {
      const double share =
          static_cast<double>(counts[r]) / static_cast<double>(std::max<int64_t>(usage.total, 1));
      points.append(QPointF(static_cast<double>(r), share));
      lo = std::min(lo, share);
      hi = std::max(hi, share);
    }
    s->replace(points);  // one update of the series, not one per point
    attach(s, x, y);
    const int stage = k + 1;
    const kvq::StageUsage summary = usage;
    onHover(s, [s, stage, summary, C](int i) {
      return tr("stage %1: rank %2 entry takes %3 % of vectors · perplexity %4 of %5 · %6 dead · %7 % used")
          .arg(stage)
          .arg(static_cast<qint64>(s->at(i).x()) + 1)
          .arg(100.0 * s->at(i).y(), 0, 'g', 3)
          .arg(summary.perplexity, 0, 'f', 1)
          .arg(C)
          .arg(summary.deadEntries)
          .arg(100.0 * summary.fractionUsed, 0, 'f', 1);
    });
  }
  x->setRange(0, std::max(C - 1, 1));
  setLogRange(y, lo, hi);
  finishRedraw();
  setReadout(tr("Uniform use is a flat line at 1/C = %1; perplexity C means every entry equally used")
                 .arg(1.0 / C, 0, 'g', 3));
}

}  // namespace kvq::ui
