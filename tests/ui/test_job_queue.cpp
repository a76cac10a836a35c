// JobQueue: newest request per tag, cancellation, errors, clean destruction, and a
// UI thread that keeps running while the worker is busy (also with low-priority
// work on a second queue, as the background trainings do: low_priority.h).
#include <QElapsedTimer>
#include <QTest>
#include <QTimer>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "job_queue.h"
#include "kvq/base/error.h"
#include "low_priority.h"
#include "ui_test_util.h"

#include <omp.h>

using kvq::ui::JobQueue;
using kvq::ui::test::waitUntil;

class JobQueueTest : public QObject {
  Q_OBJECT

 private slots:
  void rapidRequestsRunFirstAndLast();
  void errorsReachTheHandlerOnly();
  void otherTagsAreNotCancelled();
  void cancelDropsQueuedRequest();
  void destructionCancelsAndJoins();
  void uiThreadStaysResponsive();
  void lowPriorityWorkRelaysAndInherits();
  void disposeDestroysOnWorker();
  void supersededResultIsReleasedOnWorker();
};

namespace {

// Blocks until cancelled (polling like a real job does between units of work).
void spinUntilCancelled(const kvq::TaskControl& control) {
  for (;;) {
    control.check();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

void JobQueueTest::rapidRequestsRunFirstAndLast() {
  JobQueue jobs;
  std::vector<int> started;  // UI-thread copies of what ran
  std::vector<int> delivered;
  std::vector<std::pair<quint64, JobQueue::Outcome>> outcomes;
  connect(&jobs, &JobQueue::taskFinished, this,
          [&](const QString&, quint64 id, JobQueue::Outcome o) { outcomes.emplace_back(id, o); });
  auto ran = std::make_shared<std::vector<int>>();  // written on the worker, read after join points
  auto mutex = std::make_shared<std::mutex>();
  std::atomic<bool> firstStarted{false};

  std::vector<quint64> ids;
  for (int i = 1; i <= 5; ++i) {
    ids.push_back(jobs.run<int>(
        QStringLiteral("scrub"), QStringLiteral("job %1").arg(i), this,
        [i, ran, mutex, &firstStarted](const kvq::TaskControl& control) {
          {
            std::lock_guard lock(*mutex);
            ran->push_back(i);
          }
          if (i == 1) {
            firstStarted = true;
            spinUntilCancelled(control);
          }
          return i * 10;
        },
        [&delivered](int& value) { delivered.push_back(value); }));
    if (i == 1) QVERIFY(waitUntil([&] { return firstStarted.load(); }));
  }
  QVERIFY(waitUntil([&] { return !jobs.isPending(QStringLiteral("scrub")); }));
  {
    std::lock_guard lock(*mutex);
    QCOMPARE(*ran, (std::vector<int>{1, 5}));
  }
  QCOMPARE(delivered, std::vector<int>{50});
  QCOMPARE(outcomes.size(), size_t{5});
  auto outcomeOf = [&](quint64 id) {
    for (const auto& [i, o] : outcomes) {
      if (i == id) return o;
    }
    return JobQueue::Outcome::Done;
  };
  QCOMPARE(outcomeOf(ids[0]), JobQueue::Outcome::Cancelled);
  for (int i = 1; i <= 3; ++i)
    QCOMPARE(outcomeOf(ids[static_cast<size_t>(i)]), JobQueue::Outcome::Superseded);
  QCOMPARE(outcomeOf(ids[4]), JobQueue::Outcome::Done);
}

void JobQueueTest::errorsReachTheHandlerOnly() {
  JobQueue jobs;
  QString error;
  bool resultCalled = false;
  QString finishedMessage;
  connect(&jobs, &JobQueue::taskFinished, this,
          [&](const QString&, quint64, JobQueue::Outcome, const QString& m) { finishedMessage = m; });
  jobs.run<int>(
      QStringLiteral("t"), QStringLiteral("failing"), this,
      [](const kvq::TaskControl&) -> int { kvq::throwBadInput("f.h5", "/layers/0", "bad shape"); },
      [&](int&) { resultCalled = true; },
      [&](const kvq::Error& e) { error = QString::fromStdString(e.what()); });
  QVERIFY(waitUntil([&] { return !jobs.isPending(QStringLiteral("t")); }));
  QCOMPARE(error, QStringLiteral("f.h5: /layers/0: bad shape"));
  QCOMPARE(finishedMessage, error);
  QVERIFY(!resultCalled);
}

void JobQueueTest::otherTagsAreNotCancelled() {
  JobQueue jobs;
  std::atomic<bool> started{false};
  int a = 0, b = 0;
  jobs.run<int>(
      QStringLiteral("a"), QString(), this,
      [&started](const kvq::TaskControl& control) {
        started = true;
        for (int i = 0; i < 50; ++i) {
          control.check();
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return 1;
      },
      [&a](int& v) { a = v; });
  QVERIFY(waitUntil([&] { return started.load(); }));
  jobs.run<int>(
      QStringLiteral("b"), QString(), this, [](const kvq::TaskControl&) { return 2; },
      [&b](int& v) { b = v; });
  QVERIFY(waitUntil([&] { return a == 1 && b == 2; }));
}

// cancel() withdraws a queued request as submit() does when replacing one: it never
// runs, finishes Cancelled at once, and its tag is no longer pending.
void JobQueueTest::cancelDropsQueuedRequest() {
  JobQueue jobs;
  std::atomic<bool> blockerStarted{false};
  auto queuedRan = std::make_shared<std::atomic<bool>>(false);
  std::vector<std::pair<QString, JobQueue::Outcome>> finished;
  connect(&jobs, &JobQueue::taskFinished, this,
          [&](const QString& tag, quint64, JobQueue::Outcome o) { finished.emplace_back(tag, o); });
  jobs.submit(QStringLiteral("blocker"), QString(), [&blockerStarted](const kvq::TaskControl& control) {
    blockerStarted = true;
    spinUntilCancelled(control);
    return std::function<void()>();
  });
  QVERIFY(waitUntil([&] { return blockerStarted.load(); }));
  jobs.submit(QStringLiteral("queued"), QString(), [queuedRan](const kvq::TaskControl&) {
    *queuedRan = true;
    return std::function<void()>();
  });
  QVERIFY(jobs.isPending(QStringLiteral("queued")));
  jobs.cancel(QStringLiteral("queued"));
  QVERIFY(!jobs.isPending(QStringLiteral("queued")));
  QCOMPARE(finished.size(), size_t{1});
  QCOMPARE(finished[0].first, QStringLiteral("queued"));
  QCOMPARE(finished[0].second, JobQueue::Outcome::Cancelled);
  QVERIFY(jobs.isPending(QStringLiteral("blocker")));
  jobs.cancel(QStringLiteral("blocker"));
  QVERIFY(waitUntil([&] { return !jobs.isPending(QStringLiteral("blocker")); }));
  QVERIFY(!queuedRan->load());
}

void JobQueueTest::destructionCancelsAndJoins() {
  auto sawCancel = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto queuedRan = std::make_shared<std::atomic<bool>>(false);
  {
    JobQueue jobs;
    jobs.submit(QStringLiteral("long"), QString(), [sawCancel, started](const kvq::TaskControl& control) {
      *started = true;
      while (!control.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      *sawCancel = true;
      return std::function<void()>();
    });
    jobs.submit(QStringLiteral("queued"), QString(), [queuedRan](const kvq::TaskControl&) {
      *queuedRan = true;
      return std::function<void()>();
    });
    QVERIFY(waitUntil([&] { return started->load(); }));
  }  // ~JobQueue: cancels, drops the queued job, joins
  QVERIFY(sawCancel->load());
  QVERIFY(!queuedRan->load());
}

namespace {

// About `ms` of CPU-bound work on an OpenMP team, reporting progress very often.
double busyWork(const kvq::TaskControl& control, int ms) {
  double acc = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  int64_t i = 0;
  while (std::chrono::steady_clock::now() < until) {
#pragma omp parallel for reduction(+ : acc)
    for (int j = 0; j < 20000; ++j) acc += 1e-9 * static_cast<double>(j);
    control.report(static_cast<double>(++i % 1000) / 1000.0, "busy");
    control.check();
  }
  return acc;
}

}  // namespace

void JobQueueTest::uiThreadStaysResponsive() {
  JobQueue jobs;
  JobQueue background;
  std::atomic<int> started{0};
  int finished = 0;
  // CPU-bound jobs reporting progress very often, one of them at low priority on a
  // second queue: the UI thread must keep processing events (only throttled progress
  // events reach it, and no lock it takes is held by a starved thread).
  jobs.run<double>(
      QStringLiteral("long"), QStringLiteral("busy"), this,
      [&started](const kvq::TaskControl& control) {
        ++started;
        return busyWork(control, 800);
      },
      [&finished](double&) { ++finished; });
  background.run<double>(
      QStringLiteral("long"), QStringLiteral("busy at low priority"), this,
      [&started](const kvq::TaskControl& control) {
        ++started;
        double acc = 0;
        kvq::ui::runAtLowPriority([&](const kvq::TaskControl& inner) { acc = busyWork(inner, 800); },
                                  control);
        return acc;
      },
      [&finished](double&) { ++finished; });
  int progressEvents = 0;
  connect(&jobs, &JobQueue::taskProgress, this, [&] { ++progressEvents; });
  connect(&background, &JobQueue::taskProgress, this, [&] { ++progressEvents; });

  kvq::ui::test::UiWatchdog watchdog;
  QVERIFY(waitUntil([&] { return started.load() == 2; }, 30000));
  watchdog.start();
  QVERIFY(waitUntil([&] { return finished == 2; }, 60000));
  watchdog.stop();
  qInfo(
      "UI thread while the workers were busy: longest busy stretch %lld ms, longest stall %lld ms "
      "(wall-clock gap with run-queue waits: %lld ms; %d progress events)",
      static_cast<long long>(watchdog.worstBusyMs()), static_cast<long long>(watchdog.worstStallMs()),
      static_cast<long long>(watchdog.worstGapMs()), progressEvents);
  QVERIFY2(watchdog.worstBusyMs() < 50, qPrintable(watchdog.stalls().join(QStringLiteral("; "))));
  QVERIFY2(watchdog.worstStallMs() < 200, qPrintable(watchdog.stalls().join(QStringLiteral("; "))));
  QVERIFY(progressEvents > 0);
}

void JobQueueTest::lowPriorityWorkRelaysAndInherits() {
  // The work's thread and every thread of its OpenMP team run at nice 19; the caller keeps its own.
  const int callerNice = kvq::ui::currentThreadNice();
  int workNice = -100;
  int teamMin = 100, teamMax = -100;
  std::vector<double> relayed;
  kvq::TaskControl outer;
  outer.onProgress = [&](double f, const std::string&) { relayed.push_back(f); };
  kvq::ui::runAtLowPriority(
      [&](const kvq::TaskControl& inner) {
        workNice = kvq::ui::currentThreadNice();
#pragma omp parallel num_threads(2)
        {
          const int nice = kvq::ui::currentThreadNice();
#pragma omp critical
          {
            teamMin = std::min(teamMin, nice);
            teamMax = std::max(teamMax, nice);
          }
        }
        inner.report(0.5, "half");
        std::this_thread::sleep_for(std::chrono::milliseconds(60));
        inner.report(1.0, "done");
      },
      outer);
#ifdef __linux__
  QCOMPARE(workNice, 19);
  QCOMPARE(teamMin, 19);
  QCOMPARE(teamMax, 19);
#endif
  QCOMPARE(kvq::ui::currentThreadNice(), callerNice);
  QVERIFY(!relayed.empty());
  QCOMPARE(relayed.back(), 1.0);

  // Cancellation reaches the work; its errors reach the caller.
  std::atomic<bool> cancel{true};
  kvq::TaskControl cancelled;
  cancelled.cancel = &cancel;
  bool threw = false;
  try {
    kvq::ui::runAtLowPriority([](const kvq::TaskControl& inner) { inner.check(); }, cancelled);
  } catch (const kvq::Error& e) {
    threw = e.kind() == kvq::ErrorKind::Cancelled;
  }
  QVERIFY(threw);
  threw = false;
  try {
    kvq::ui::runAtLowPriority([](const kvq::TaskControl&) { kvq::throwBadInput("f.h5", "/x", "bad"); },
                              outer);
  } catch (const kvq::Error& e) {
    threw = e.kind() == kvq::ErrorKind::BadInput && std::string(e.what()).find("f.h5") != std::string::npos;
  }
  QVERIFY(threw);
}

void JobQueueTest::disposeDestroysOnWorker() {
  JobQueue jobs;
  struct Probe {
    std::shared_ptr<std::atomic<bool>> onMain;
    std::thread::id mainId;
    ~Probe() { *onMain = std::this_thread::get_id() == mainId; }
  };
  auto onMain = std::make_shared<std::atomic<bool>>(true);
  auto destroyed = std::make_shared<std::atomic<bool>>(false);
  {
    auto probe = std::shared_ptr<const Probe>(new Probe{onMain, std::this_thread::get_id()},
                                              [destroyed](const Probe* p) {
                                                delete p;
                                                *destroyed = true;
                                              });
    jobs.dispose(std::move(probe));
  }
  QVERIFY(waitUntil([&] { return destroyed->load(); }));
  QVERIFY(!onMain->load());
}

// A result whose continuation never runs (a newer request of its tag came first)
// may own a DumpReader: its last reference must die on the worker, not here.
void JobQueueTest::supersededResultIsReleasedOnWorker() {
  JobQueue jobs;
  struct Probe {
    std::thread::id* destroyedOn;
    ~Probe() { *destroyedOn = std::this_thread::get_id(); }
  };
  using ProbePtr = std::shared_ptr<const Probe>;
  std::thread::id destroyedOn;
  std::atomic<bool> go{false};
  std::atomic<bool> returned{false};
  std::atomic<bool> released{false};
  bool firstDelivered = false;
  jobs.run<ProbePtr>(
      QStringLiteral("t"), QStringLiteral("first"), this,
      [&](const kvq::TaskControl&) -> ProbePtr {
        while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        returned = true;
        return ProbePtr(new Probe{&destroyedOn}, [&released](const Probe* p) {
          delete p;
          released = true;
        });
      },
      [&](ProbePtr&) { firstDelivered = true; });
  go = true;
  // Without spinning the event loop: the first result is posted, not yet delivered.
  while (!returned.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it leave the job
  bool secondDelivered = false;
  jobs.run<int>(
      QStringLiteral("t"), QStringLiteral("second"), this, [](const kvq::TaskControl&) { return 2; },
      [&](int&) { secondDelivered = true; });
  QVERIFY(waitUntil([&] { return secondDelivered && released.load(); }));
  QVERIFY(!firstDelivered);  // superseded (or cancelled, had it still been running)
  QVERIFY(destroyedOn != std::this_thread::get_id());
}

QTEST_GUILESS_MAIN(JobQueueTest)
#include "test_job_queue.moc"
