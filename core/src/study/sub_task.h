// Nested progress for long work made of parts (layer x kind jobs, sweep points).
// Private to kvq_core.
#pragma once

#include <algorithm>
#include <string>

#include "kvq/base/task.h"

namespace kvq {

// A TaskControl that maps a sub-task's 0..1 onto [base, base+span] of the parent.
inline TaskControl subControl(const TaskControl* parent, double base, double span, const std::string& label) {
  TaskControl sub;
  if (parent == nullptr) return sub;
  sub.cancel = parent->cancel;
  sub.onProgress = [parent, base, span, label](double f, const std::string& stage) {
    parent->report(base + span * std::clamp(f, 0.0, 1.0), stage.empty() ? label : label + " " + stage);
  };
  return sub;
}

}  // namespace kvq
