// Opening a dump as the studio does (kvq::ui::loadSession, i.e. core's open path):
// time to the header (the dataset panel's first paint), time to every layer's
// statistics, and peak memory of this process and of the largest validator child.
//
//   bench_open DUMP [--no-isolation] [--cache DIR] [--workers N] [--repeat N]
//
// Prints one JSON line per run: {"mode", "first_paint_s", "full_s", "from_cache",
// "parent_peak_rss_mb", "child_peak_rss_mb"}. bench/open_bench.py drives it next to
// `kvq info` and writes the table of docs/benchmarks.md. It measures; it never fails
// on time.
#include <sys/resource.h>

#include <QString>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "dump_session.h"
#include "kvq/base/error.h"

namespace {

double peakMb(int who) {
  struct rusage usage {};
  getrusage(who, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_open DUMP [--no-isolation] [--cache DIR] [--workers N] [--repeat N]\n");
    return 2;
  }
  kvq::OpenPolicy policy = kvq::OpenPolicy::fromEnvironment();
  policy.useCache = false;
  int repeat = 1;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--no-isolation") {
      policy.isolate = false;
    } else if (arg == "--cache" && i + 1 < argc) {
      policy.useCache = true;
      policy.cacheDirectory = argv[++i];
    } else if (arg == "--workers" && i + 1 < argc) {
      policy.workers = std::atoi(argv[++i]);
    } else if (arg == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    }
  }
  using Clock = std::chrono::steady_clock;
  try {
    for (int r = 0; r < repeat; ++r) {
      const auto start = Clock::now();
      double firstPaint = -1;
      kvq::OpenListener listener;
      listener.onHeader = [&](const kvq::DumpInfo&) {
        firstPaint = std::chrono::duration<double>(Clock::now() - start).count();
      };
      const kvq::TaskControl control;
      const kvq::ui::SessionPtr session =
          kvq::ui::loadSession(QString::fromLocal8Bit(argv[1]), policy, listener, control);
      const double full = std::chrono::duration<double>(Clock::now() - start).count();
      std::printf(
          "{\"mode\": \"%s\", \"first_paint_s\": %.3f, \"full_s\": %.3f, \"from_cache\": %s, "
          "\"parent_peak_rss_mb\": %.1f, \"child_peak_rss_mb\": %.1f}\n",
          policy.isolate ? "isolated" : "in-process", firstPaint, full,
          session->statsFromCache ? "true" : "false", peakMb(RUSAGE_SELF), peakMb(RUSAGE_CHILDREN));
      std::fflush(stdout);
    }
  } catch (const kvq::Error& e) {
    std::fprintf(stderr, "bench_open: %s\n", e.what());
    return 2;
  }
  return 0;
}
