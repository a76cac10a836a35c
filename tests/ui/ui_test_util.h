// Helpers shared by the GUI tests.
#pragma once

#include <QEventLoop>
#include <QObject>
#include <QTimer>

#include "event_wait.h"

namespace kvq::ui::test {

using kvq::ui::waitForSignal;  // ui/event_wait.h

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
