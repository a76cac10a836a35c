// runAtLowPriority — runs work on a thread of its own at the lowest CPU priority.
//
// The caller (a JobQueue worker) keeps its normal priority and only relays: it
// forwards the work's progress to its own TaskControl and the cancel flag to the
// work. So the thread that posts events to the UI thread and takes the queue's
// locks is never one the scheduler starves (a starved thread holding such a lock
// would stall the UI thread: priority inversion), while the computing thread and
// the OpenMP team it starts (created from it, they inherit its priority) use only
// the cores nothing else wants. Linux only; elsewhere the work runs at normal priority.
#pragma once

#include <functional>
#include <memory>

#include "kvq/base/task.h"

namespace kvq::ui {

// Runs work(inner) on a new low-priority thread and waits for it. inner carries
// outer's cancel flag; its progress reaches outer from the calling thread. An
// exception of work is rethrown here.
void runAtLowPriority(const std::function<void(const kvq::TaskControl& inner)>& work,
                      const kvq::TaskControl& outer);

// The nice value of the calling thread (19 inside work on Linux; 0 elsewhere).
int currentThreadNice();

}  // namespace kvq::ui
