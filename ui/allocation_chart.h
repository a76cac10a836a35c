// Allocation chart: the bit allocation of `kvq allocate` (a codebook file's /allocation,
// docs/model.md "Bit budget") — bits per channel of every layer, keys next to values, with the
// budget and what the choice uses in the title. Hovering a bar reads out its depth and loss.
#pragma once

#include "chart_widget.h"
#include "kvq/study/bit_budget.h"

namespace kvq::ui {

class AllocationChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit AllocationChart(QWidget* parent = nullptr);
  void setAllocation(const kvq::CacheAllocation& allocation);
};

}  // namespace kvq::ui
