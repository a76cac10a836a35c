#include "channel_chart.h"

#include <QChart>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QScatterSeries>
#include <QValueAxis>

#include <algorithm>

#include "chart_style.h"
#include "kvq/rvq/preprocess.h"

namespace kvq::ui {
namespace {

// group[c]: which of the G groups channel c belongs to under the grouping (all 0
// when g does not divide D).
std::vector<int> groupOfChannel(int D, int groupSize, kvq::Grouping grouping) {
  std::vector<int> group(static_cast<size_t>(D), 0);
  if (groupSize > 0 && D % groupSize == 0) {
    const std::vector<int> order = kvq::channelOrder(D, groupSize, grouping);
    for (int p = 0; p < D; ++p) group[static_cast<size_t>(order[static_cast<size_t>(p)])] = p / groupSize;
  }
  return group;
}

}  // namespace

ChannelChart::ChannelChart(QWidget* parent)
    : ChartWidget(tr("Channel magnitudes"), QStringLiteral("channel_magnitudes"), parent) {
  showPlaceholder(tr("Open a dump and select a layer to see its channels"));
}

void ChannelChart::setData(const ChannelData& values, int groupSize, kvq::Grouping grouping) {
  const int D = static_cast<int>(values.meanAbs.size());
  if (D == 0) {
    showPlaceholder(tr("No channel data"));
    return;
  }
  const QString whose = values.head >= 0 ? tr("head %1").arg(values.head) : tr("all heads");
  resetChart(tr("Channel magnitudes — layer %1 %2, %3").arg(values.layer).arg(kindLabel(values.kind), whose));
  auto* x = makeValueAxis(tr("channel"), QStringLiteral("%d"));
  auto* y = makeValueAxis(tr("|x|"));

  const std::vector<int> group = groupOfChannel(D, groupSize, grouping);
  const int G = groupSize > 0 && D % groupSize == 0 ? D / groupSize : 1;
  const HoverText text = [values, group, G](int c) {
    return tr("channel %1: mean |x| %2 · max |x| %3 · group %4 of %5")
        .arg(c)
        .arg(values.meanAbs[static_cast<size_t>(c)], 0, 'g', 4)
        .arg(values.maxAbs[static_cast<size_t>(c)], 0, 'g', 4)
        .arg(group[static_cast<size_t>(c)] + 1)
        .arg(G);
  };
  addMagnitudeCurves(values, text, x, y);
  addGroupMarkers(values, group, std::min(G, kMaxGroupSeries),
                  tr("groups (g = %1, %2)").arg(groupSize).arg(kvq::groupingName(grouping)), text, x, y);

  const double hi = *std::max_element(values.maxAbs.begin(), values.maxAbs.end());
  x->setRange(-0.5, D - 0.5);
  x->setTickType(QValueAxis::TicksDynamic);
  x->setTickAnchor(0);
  x->setTickInterval(D >= 64 ? D / 8 : std::max(1, D / 4));
  y->setRange(0, hi > 0 ? hi * 1.05 : 1.0);
  y->applyNiceNumbers();
  setReadout(tr("%1 channels in %2 groups of %3 (%4) · colour = group")
                 .arg(D)
                 .arg(G)
                 .arg(groupSize)
                 .arg(kvq::groupingName(grouping)));
}

void ChannelChart::addMagnitudeCurves(const ChannelData& values, const HoverText& text, QValueAxis* x,
                                      QValueAxis* y) {
  auto* maxSeries = new QLineSeries;
  maxSeries->setName(tr("max |x|"));
  maxSeries->setColor(QColor(0x90, 0x90, 0x90));
  auto* meanSeries = new QLineSeries;
  meanSeries->setName(tr("mean |x|"));
  meanSeries->setColor(kindColor(values.kind));
  for (size_t c = 0; c < values.meanAbs.size(); ++c) {
    maxSeries->append(static_cast<double>(c), values.maxAbs[c]);
    meanSeries->append(static_cast<double>(c), values.meanAbs[c]);
  }
  attach(maxSeries, x, y);
  attach(meanSeries, x, y);
  onHover(maxSeries, text);
  onHover(meanSeries, text);
}

void ChannelChart::addGroupMarkers(const ChannelData& values, const std::vector<int>& group, int colours,
                                   const QString& legend, const HoverText& text, QValueAxis* x,
                                   QValueAxis* y) {
  // One scatter series per colour, on the mean curve; group j takes colour j mod colours.
  std::vector<QScatterSeries*> marks(static_cast<size_t>(colours));
  for (int j = 0; j < colours; ++j) {
    auto* s = new QScatterSeries;
    s->setName(j == 0 ? legend : QString());
    s->setMarkerSize(7);
    s->setColor(groupColor(j, colours));
    s->setBorderColor(groupColor(j, colours).darker(140));
    marks[static_cast<size_t>(j)] = s;
  }
  std::vector<std::vector<int>> channelsOf(static_cast<size_t>(colours));
  for (size_t c = 0; c < group.size(); ++c) {
    const int j = group[c] % colours;
    marks[static_cast<size_t>(j)]->append(static_cast<double>(c), values.meanAbs[c]);
    channelsOf[static_cast<size_t>(j)].push_back(static_cast<int>(c));
  }
  for (int j = 0; j < colours; ++j) {
    attach(marks[static_cast<size_t>(j)], x, y);
    const std::vector<int> channels = channelsOf[static_cast<size_t>(j)];
    onHover(marks[static_cast<size_t>(j)],
            [text, channels](int i) { return text(channels[static_cast<size_t>(i)]); });
    // One legend entry stands for all group colours.
    if (j > 0) {
      for (QLegendMarker* m : chart()->legend()->markers(marks[static_cast<size_t>(j)])) m->setVisible(false);
    }
  }
}

}  // namespace kvq::ui
