// TaskControl — progress reporting and cooperative cancellation for long work.
//
// Long operations (value scans, statistics, training, sweeps) take a
// `const TaskControl*` (nullptr = no reporting, not cancellable). They call
// `check()` between units of work; it throws Error(ErrorKind::Cancelled) once the
// cancel flag is set. Callbacks run on the worker thread: a GUI must marshal them.
#pragma once

#include <atomic>
#include <functional>
#include <string>

namespace kvq {

struct TaskControl {
  // fraction: 0..1 of the whole operation; stage: short human-readable label.
  std::function<void(double fraction, const std::string& stage)> onProgress;
  const std::atomic<bool>* cancel = nullptr;

  void report(double fraction, const std::string& stage) const {
    if (onProgress) onProgress(fraction, stage);
  }
  bool cancelled() const { return cancel != nullptr && cancel->load(std::memory_order_relaxed); }
  // Throws Error(ErrorKind::Cancelled) when cancellation was requested.
  void check() const;
};

// Null-safe helpers for optional controls.
inline void reportProgress(const TaskControl* ctl, double fraction, const std::string& stage) {
  if (ctl != nullptr) ctl->report(fraction, stage);
}
inline void checkCancel(const TaskControl* ctl) {
  if (ctl != nullptr) ctl->check();
}

}  // namespace kvq
