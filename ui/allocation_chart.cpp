#include "allocation_chart.h"

#include <QBarCategoryAxis>
#include <QBarSeries>
#include <QBarSet>
#include <QChart>
#include <QValueAxis>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "chart_style.h"

namespace kvq::ui {

AllocationChart::AllocationChart(QWidget* parent)
    : ChartWidget(tr("Bit allocation"), QStringLiteral("bit_allocation"), parent) {
  showPlaceholder(tr("Open a codebook file written by kvq allocate to see its bits per layer"));
}

void AllocationChart::setAllocation(const kvq::CacheAllocation& a) {
  resetChart(tr("Bit allocation: budget %1, used %2 bits/channel (context %3 tokens, sinks %4, window %5)")
                 .arg(a.budget, 0, 'f', 2)
                 .arg(a.bitsPerChannel, 0, 'f', 3)
                 .arg(a.contextTokens)
                 .arg(a.sinks)
                 .arg(a.window));
  std::map<int, std::array<size_t, 2>> byLayer;  // layer -> item index of keys, values (+1; 0 = none)
  for (size_t i = 0; i < a.layers.size(); ++i)
    byLayer[a.layers[i]][a.kinds[i] == kvq::Kind::Keys ? 0 : 1] = i + 1;
  auto layers = std::make_shared<std::vector<int>>();
  auto* x = new QBarCategoryAxis;
  x->setTitleText(tr("layer"));
  for (const auto& entry : byLayer) {
    layers->push_back(entry.first);
    x->append(QString::number(entry.first));
  }
  auto* y = makeValueAxis(tr("bits per channel"));
  auto* bars = new QBarSeries;
  double hi = 0;
  for (const kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
    const size_t slot = kind == kvq::Kind::Keys ? 0 : 1;
    auto* set = new QBarSet(kindLabel(kind));
    set->setColor(kindColor(kind));
    set->setBorderColor(kindColor(kind).darker(130));
    auto items = std::make_shared<std::vector<size_t>>();  // per bar: item index + 1
    for (const auto& entry : byLayer) {
      const size_t item = entry.second[slot];
      items->push_back(item);
      const double bits = item > 0 ? a.bits[item - 1] : 0.0;
      set->append(bits);
      hi = std::max(hi, bits);
    }
    connect(set, &QBarSet::hovered, this, [this, a, items, layers, kind](bool state, int index) {
      if (!state || index < 0 || index >= static_cast<int>(items->size())) return;
      const size_t item = (*items)[static_cast<size_t>(index)];
      if (item == 0) return;
      setReadout(tr("layer %1 %2: depth %3, %4 bits/channel, loss %5")
                     .arg((*layers)[static_cast<size_t>(index)])
                     .arg(kindLabel(kind))
                     .arg(a.depths[item - 1])
                     .arg(a.bits[item - 1], 0, 'f', 3)
                     .arg(a.losses[item - 1], 0, 'g', 4));
    });
    bars->append(set);  // the series owns the set
  }
  attach(bars, x, y);
  y->setRange(0, hi > 0 ? hi * 1.1 : 1.0);
  y->applyNiceNumbers();
  setReadout(tr("%1 quantizers, summed loss %2 (%3) · hover over a bar for its depth")
                 .arg(a.layers.size())
                 .arg(a.loss, 0, 'g', 4)
                 .arg(QString::fromStdString(a.method)));
}

}  // namespace kvq::ui
