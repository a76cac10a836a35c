// Waiting for a signal by spinning a local event loop: used by the offscreen
// screenshot renderer and by the GUI tests (QSignalSpy::wait needs a registered
// metatype for every argument of the signal; this does not).
#pragma once

#include <QEventLoop>
#include <QObject>
#include <QTimer>

namespace kvq::ui {

// Spins the event loop until `signal` of `sender` fires or timeoutMs passes.
// Returns whether it fired.
template <class Sender, class Signal>
bool waitForSignal(Sender* sender, Signal signal, int timeoutMs = 120000) {
  QEventLoop loop;
  bool fired = false;
  QObject::connect(sender, signal, &loop, [&] {
    fired = true;
    loop.quit();
  });
  QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
  loop.exec();
  return fired;
}

}  // namespace kvq::ui
