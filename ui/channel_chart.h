// Channel magnitudes of the selected layer/kind (or one head): mean and max |x|
// per channel, with the channel groups of the current grouping marked by colour.
#pragma once

#include <functional>
#include <vector>

#include "chart_widget.h"
#include "kvq/rvq/rvq_config.h"

class QValueAxis;

namespace kvq::ui {

struct ChannelData {
  int layer = 0;
  kvq::Kind kind = kvq::Kind::Keys;
  int head = -1;                // -1: all heads
  std::vector<double> meanAbs;  // [D]
  std::vector<double> maxAbs;   // [D]
};

class ChannelChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit ChannelChart(QWidget* parent = nullptr);
  // groupSize g and grouping define which channels quantize together.
  void setData(const ChannelData& values, int groupSize, kvq::Grouping grouping);

  static constexpr int kMaxGroupSeries = 16;  // colours cycle beyond this many groups

 private:
  using HoverText = std::function<QString(int channel)>;
  // The max and mean |x| curves over the channels.
  void addMagnitudeCurves(const ChannelData& values, const HoverText& text, QValueAxis* x, QValueAxis* y);
  // Markers on the mean curve coloured by group (group[c] of channel c, `colours` colours).
  void addGroupMarkers(const ChannelData& values, const std::vector<int>& group, int colours,
                       const QString& legend, const HoverText& text, QValueAxis* x, QValueAxis* y);
};

}  // namespace kvq::ui
