// Helpers shared by the GUI tests.
#pragma once

#include <QEventLoop>
#include <QObject>
#include <QTimer>

namespace kvq::ui::test {

// Spins the event loop until `signal` of `sender` fires or timeoutMs passes.
// Returns whether it fired. (QSignalSpy::wait needs metatypes for every argument.)
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

// Spins the event loop until done() or timeoutMs passes.
template <class Pred>
bool waitUntil(Pred done, int timeoutMs = 120000) {
  QEventLoop loop;
  QTimer poll;
  QObject::connect(&poll, &QTimer::timeout, &loop, [&] {
    if (done()) loop.quit();
  });
  QTimer::singleShot(timeoutMs, &loop, &QEventLoop::quit);
  poll.start(5);
  if (!done()) loop.exec();
  return done();
}

}  // namespace kvq::ui::test
