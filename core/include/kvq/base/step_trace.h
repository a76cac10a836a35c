// Step tracing — what the file readers are about to do, for crash reports.
//
// The isolated validator (kvq/isolate/validator.h) installs a sink that sends each
// step to its parent process *before* the risky library call it names, so when
// libhdf5 crashes or hangs on a hostile file the parent can say what it was doing
// ("reading root attribute 'model'"). In every other process no sink is installed
// and a trace point costs one relaxed atomic load: call sites build their text
// only when stepTracing() is true.
#pragma once

#include <string_view>

namespace kvq {

// Receives one step; must write it out synchronously (the next call may crash).
using StepSink = void (*)(std::string_view step);

// Installs sink for the whole process (nullptr: tracing off, the default).
void setStepSink(StepSink sink);
bool stepTracing();
// Sends step to the sink, if any.
void traceStep(std::string_view step);

}  // namespace kvq
