// Helpers shared by the GUI tests.
#pragma once

#include <QElapsedTimer>
#include <QEventLoop>
#include <QFile>
#include <QObject>
#include <QStringList>
#include <QTest>
#include <QTimer>

#include <algorithm>

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

// Watches the UI thread's event loop with a 5 ms timer. Between two ticks:
//  - gap: the wall time;
//  - busy: the time the UI thread ran (its own work: handlers, layout, painting);
//  - stall: the gap less the time the thread sat runnable in the kernel's run queue,
//    i.e. its own work plus any time it was blocked (a lock, a join, I/O).
// All from Linux /proc/thread-self/schedstat, so the measure is the program's, not
// how loaded the machine is (a shared 2-core VM may keep a runnable thread waiting
// 100-300 ms). Blocked time on such a VM also holds scheduler effects (a thread
// holding a lock for a microsecond that then waits its turn), so tests bound busy
// tightly and stall loosely. Without schedstat busy and stall are the whole gap.
// Create, start() and read it on the UI thread.
class UiWatchdog : public QObject {
 public:
  explicit UiWatchdog(QObject* parent = nullptr) : QObject(parent) {
    m_timer.setInterval(5);
    m_timer.setTimerType(Qt::PreciseTimer);
    connect(&m_timer, &QTimer::timeout, this, [this] { tick(); });
  }
  void start() {
    m_clock.start();
    m_lastWall = 0;
    m_lastQueued = queuedNs();
    m_lastRan = schedstat(0);
    m_timer.start();
  }
  void stop() { m_timer.stop(); }
  qint64 worstBusyMs() const { return m_worstBusy; }
  qint64 worstStallMs() const { return m_worstStall; }
  qint64 worstGapMs() const { return m_worstGap; }
  // Stalls of 20 ms or more: "<ms> ms (<busy> ms running) in <test function> at <ms since start>".
  const QStringList& stalls() const { return m_stalls; }

 private:
  // Nanoseconds this thread has spent running (field 0) or runnable but not running
  // (field 1); -1: unknown.
  static qint64 schedstat(int field) {
    QFile file(QStringLiteral("/proc/thread-self/schedstat"));
    if (!file.open(QIODevice::ReadOnly)) return -1;
    const QList<QByteArray> fields = file.readAll().simplified().split(' ');
    return fields.size() >= 2 ? fields[field].toLongLong() : -1;
  }
  static qint64 queuedNs() { return schedstat(1); }
  void tick() {
    const qint64 wall = m_clock.nsecsElapsed();
    const qint64 queued = queuedNs();
    const qint64 ran = schedstat(0);
    const qint64 gap = wall - m_lastWall;
    const qint64 waited = queued >= 0 && m_lastQueued >= 0 ? queued - m_lastQueued : 0;
    m_worstGap = std::max(m_worstGap, gap / 1000000);
    const qint64 stall = std::max<qint64>(gap - waited, 0) / 1000000;
    const qint64 busy = ran >= 0 && m_lastRan >= 0 ? (ran - m_lastRan) / 1000000 : stall;
    m_worstStall = std::max(m_worstStall, stall);
    m_worstBusy = std::max(m_worstBusy, busy);
    if (stall >= 20) {
      const char* where = QTest::currentTestFunction();
      m_stalls << QStringLiteral("%1 ms (%2 ms running) in %3 at %4 ms")
                      .arg(stall)
                      .arg(busy)
                      .arg(QLatin1String(where != nullptr ? where : "?"))
                      .arg(wall / 1000000);
    }
    m_lastWall = wall;
    m_lastQueued = queued;
    m_lastRan = ran;
  }

  QTimer m_timer;
  QElapsedTimer m_clock;
  qint64 m_lastWall = 0;
  qint64 m_lastQueued = -1;
  qint64 m_lastRan = 0;
  qint64 m_worstGap = 0;
  qint64 m_worstStall = 0;
  qint64 m_worstBusy = 0;
  QStringList m_stalls;
};

}  // namespace kvq::ui::test
