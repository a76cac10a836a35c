#include "low_priority.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <exception>
#include <mutex>
#include <string>
#include <thread>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kvq::ui {
namespace {

// How often the relaying thread looks at the work's progress.
constexpr auto kRelayInterval = std::chrono::milliseconds(20);

void lowerCurrentThreadPriority() {
#ifdef __linux__
  // Per thread on Linux (a thread id is a process id to setpriority).
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
#endif
}

// Progress handed from the low-priority thread to the relaying one.
struct Relay {
  std::mutex mutex;  // shared by these two threads only, never by the UI thread
  double fraction = 0;
  std::string stage;
  bool fresh = false;
  std::atomic<bool> done{false};
};

}  // namespace

int currentThreadNice() {
#ifdef __linux__
  errno = 0;
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
#else
  return 0;
#endif
}

void runAtLowPriority(const std::function<void(const kvq::TaskControl& inner)>& work,
                      const kvq::TaskControl& outer) {
  auto relay = std::make_shared<Relay>();
  kvq::TaskControl inner;
  inner.cancel = outer.cancel;
  inner.onProgress = [relay](double fraction, const std::string& stage) {
    const std::lock_guard lock(relay->mutex);
    relay->fraction = fraction;
    relay->stage = stage;
    relay->fresh = true;
  };
  std::exception_ptr error;
  std::thread worker([&work, &inner, &error, relay] {
    lowerCurrentThreadPriority();
    try {
      work(inner);
    } catch (...) {
      error = std::current_exception();
    }
    relay->done = true;
  });
  auto forward = [&outer, &relay] {
    double fraction = 0;
    std::string stage;
    {
      const std::lock_guard lock(relay->mutex);
      if (!relay->fresh) return;
      relay->fresh = false;
      fraction = relay->fraction;
      stage = relay->stage;
    }
    outer.report(fraction, stage);
  };
  while (!relay->done) {
    std::this_thread::sleep_for(kRelayInterval);
    forward();
  }
  worker.join();
  forward();
  if (error) std::rethrow_exception(error);
}

}  // namespace kvq::ui
