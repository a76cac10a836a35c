#include "kvq/base/step_trace.h"

#include <atomic>

namespace kvq {
namespace {

std::atomic<StepSink> g_sink{nullptr};

}  // namespace

void setStepSink(StepSink sink) {
  g_sink.store(sink, std::memory_order_release);
}

bool stepTracing() {
  return g_sink.load(std::memory_order_relaxed) != nullptr;
}

void traceStep(std::string_view step) {
  if (const StepSink sink = g_sink.load(std::memory_order_acquire)) sink(step);
}

}  // namespace kvq
