// A one-line progress bar on stderr for long CLI work. Silent when stderr is not
// a terminal (scripts, tests) unless forced. While one exists, Ctrl-C (SIGINT) requests
// cancellation through its TaskControl (the work stops at its next check and the command
// exits 130); a second Ctrl-C ends the process at once.
#pragma once

#include <chrono>
#include <string>

#include "kvq/base/task.h"

namespace kvq::cli {

class ProgressBar {
 public:
  explicit ProgressBar(bool force = false);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // A TaskControl whose progress callback draws this bar.
  const TaskControl* control() const { return &m_control; }
  void finish();

 private:
  void draw(double fraction, const std::string& stage);

  TaskControl m_control;
  bool m_enabled;
  bool m_drawn = false;
  std::chrono::steady_clock::time_point m_start;
  std::chrono::steady_clock::time_point m_lastDraw;
};

}  // namespace kvq::cli
