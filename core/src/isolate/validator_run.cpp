#include "isolate/validator_run.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "isolate/child_process.h"
#include "isolate/protocol.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_json.h"

namespace kvq::isolate {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxLine = size_t{64} << 20;  // a header with every sequence start fits
constexpr size_t kMaxStepChars = 300;
constexpr int kPollMs = 50;  // cancellation and stall checks run at least this often

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

struct Worker {
  std::unique_ptr<ChildProcess> process;
  std::string step = "starting";  // the last step it reported
  Clock::time_point lastSign;     // its last output of any kind
  double fraction = 0;
  bool done = false;
  bool stalled = false;  // killed by the wall-time watchdog
  std::optional<nlohmann::json> error;
  bool finished = false;
};

std::string mebibytes(uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

class Session {
 public:
  Session(const RunRequest& request, const OpenListener& listener, const TaskControl* control)
      : m_request(request), m_listener(listener), m_control(control) {}

  ~Session() {
    for (Worker& w : m_workers) w.process->kill();  // the destructors reap them
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  RunResult run() {
    start();
    while (std::any_of(m_workers.begin(), m_workers.end(), [](const Worker& w) { return !w.finished; })) {
      pump();
    }
    return collect();
  }

 private:
  void start();
  void pump();
  void handleLine(Worker& w, const std::string& line);
  void handleEvent(Worker& w, const std::string& event, const nlohmann::json& j);
  void onHeader(const nlohmann::json& j);
  void onLayer(const nlohmann::json& j);
  void finish(Worker& w);
  [[noreturn]] void refuse(const Worker& w, const std::string& what);
  [[noreturn]] void protocolError(const std::string& problem) const {
    throwInternal("validator " + m_request.validator, problem);
  }
  RunResult collect();

  const RunRequest& m_request;
  const OpenListener& m_listener;
  const TaskControl* m_control;
  std::vector<Worker> m_workers;
  std::optional<DumpInfo> m_info;
  std::vector<LayerStats> m_stats;
  size_t m_codebookSets = 0;
  uint64_t m_cpuLimit = 0;  // seconds per process
};

void Session::start() {
  const bool dump = m_request.kind == UntrustedKind::Dump;
  const int workers = dump && m_request.statistics ? std::max(1, m_request.workers) : 1;
  ChildLimits limits;
  // The validator limits its own address space once started (ValidatorRequest::
  // addressSpaceBytes), not RLIMIT_AS before exec: kvq's libraries must load first.
  limits.addressSpaceBytes = 0;
  limits.cpuSeconds = m_request.limits.cpuSeconds > 0
                          ? static_cast<uint64_t>(std::ceil(m_request.limits.cpuSeconds))
                          : 120 + m_request.identity.size / (uint64_t{16} << 20);
  m_cpuLimit = limits.cpuSeconds;
  std::vector<std::string> env;
  if (kAddressSanitizer) {
    // Under ASan the memory limit is its allocator's (it reports and exits instead),
    // and a crash inside the uninstrumented libhdf5 stays a plain signal, as in a
    // release build, rather than becoming an ASan "SEGV" report.
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string mb = std::to_string(m_request.limits.memoryBytes >> 20);
    env.push_back(
        "ASAN_OPTIONS=" + std::string(asan != nullptr ? asan : "") + ":hard_rss_limit_mb=" + mb +
        ":max_allocation_size_mb=" + mb +
        ":detect_leaks=0:handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0");
  }
  for (int k = 0; k < workers; ++k) {
    std::vector<std::string> args = {"validate",
                                     "--json-stream",
                                     m_request.path,
                                     "--kind",
                                     dump ? "dump" : "codebooks",
                                     "--worker",
                                     std::to_string(k) + "/" + std::to_string(workers)};
    if (!m_request.statistics) args.emplace_back("--no-stats");
    if (!m_request.layers.empty()) {
      std::string list;
      for (int layer : m_request.layers) {
        if (!list.empty()) list += ',';
        list += std::to_string(layer);
      }
      args.emplace_back("--layers");
      args.emplace_back(list);
    }
    if (!kAddressSanitizer) {  // ASan reserves terabytes: its allocator's limit applies instead
      args.emplace_back("--address-space");
      args.emplace_back(std::to_string(m_request.limits.memoryBytes));
    }
    Worker w;
    w.process = std::make_unique<ChildProcess>(m_request.validator, args, limits, env);
    w.lastSign = Clock::now();
    m_workers.push_back(std::move(w));
  }
}

void Session::pump() {
  std::vector<pollfd> fds;
  for (const Worker& w : m_workers) {
    for (int fd : {w.process->stdoutFd(), w.process->stderrFd()}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
  }
  if (!fds.empty()) ::poll(fds.data(), fds.size(), kPollMs);
  checkCancel(m_control);
  const auto now = Clock::now();
  for (Worker& w : m_workers) {
    if (w.finished) continue;
    std::vector<std::string> lines;
    w.process->readLines(lines, kMaxLine);
    w.process->readStderr();
    if (!lines.empty()) w.lastSign = now;
    for (const std::string& line : lines) handleLine(w, line);
    if (!w.process->running()) {
      finish(w);
    } else if (std::chrono::duration<double>(now - w.lastSign).count() > m_request.limits.stallSeconds) {
      w.stalled = true;
      w.process->kill();
      finish(w);
    }
  }
}

void Session::handleLine(Worker& w, const std::string& line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception&) {
    protocolError("sent a line that is not JSON");
  }
  if (!j.is_object() || !j.contains("event") || !j.at("event").is_string())
    protocolError("sent a line without an event");
  try {
    handleEvent(w, j.at("event").get<std::string>(), j);
  } catch (const nlohmann::json::exception& e) {
    protocolError(std::string("sent a malformed event: ") + e.what());
  }
}

void Session::handleEvent(Worker& w, const std::string& event, const nlohmann::json& j) {
  if (event == "step") {
    w.step = j.at("step").get<std::string>().substr(0, kMaxStepChars);
  } else if (event == "progress") {
    w.fraction = std::clamp(j.at("fraction").get<double>(), 0.0, 1.0);
    double sum = 0;
    for (const Worker& other : m_workers) sum += other.fraction;
    reportProgress(m_control, sum / static_cast<double>(m_workers.size()),
                   "Checking values, computing statistics");
  } else if (event == "layer") {
    onLayer(j.at("stats"));
  } else if (event == "header") {
    onHeader(j.at("info"));
  } else if (event == "identity") {
    requireSameFile(m_request.path, m_request.identity, identityFromJson(j.at("identity")));
  } else if (event == "hello") {
    const int protocol = j.at("protocol").get<int>();
    if (protocol != kProtocolVersion) {
      protocolError("speaks protocol " + std::to_string(protocol) + ", this program needs " +
                    std::to_string(kProtocolVersion) + " (a kvq binary of another version?)");
    }
  } else if (event == "codebooks") {
    m_codebookSets = j.at("sets").get<size_t>();
  } else if (event == "error") {
    w.error = j;
  } else if (event == "done") {
    w.done = true;
  } else {
    protocolError("sent an unknown event '" + event.substr(0, 40) + "'");
  }
}

void Session::onHeader(const nlohmann::json& j) {
  DumpInfo info = dumpHeaderFromJson(j, "validator header event");
  if (info.path != m_request.path) protocolError("reported a header of another file");
  if (!m_info) {
    m_info = std::move(info);
    if (m_listener.onHeader) m_listener.onHeader(*m_info);
  } else if (!(info == *m_info)) {
    throwBadInput(m_request.path, "", "the file changed while it was validated; open it again");
  }
}

void Session::onLayer(const nlohmann::json& j) {
  if (!m_info) protocolError("sent statistics before the header");
  LayerStats ls = layerStatsFromJson(j, *m_info, "validator layer event");
  for (const LayerStats& seen : m_stats) {
    if (seen.layer == ls.layer) protocolError("sent layer " + std::to_string(ls.layer) + " twice");
  }
  m_stats.push_back(std::move(ls));
  if (m_listener.onLayer) m_listener.onLayer(m_stats.back());
}

// How a validator that did not finish ended, in the user's terms. A sanitizer build
// reports crashes and memory exhaustion itself (exit status 1 and a report on
// stderr) rather than dying of a signal.
void Session::finish(Worker& w) {
  const ChildExit exit = w.process->wait();
  w.finished = true;
  if (w.error) {
    const nlohmann::json& e = *w.error;
    const std::string kind = e.value("kind", "");
    if (kind == "memory")
      refuse(w, "exceeded the memory limit (" + mebibytes(m_request.limits.memoryBytes) + ")");
    throw Error(kind == "bad_input" ? ErrorKind::BadInput : ErrorKind::Internal, e.value("file", ""),
                e.value("where", ""), e.value("problem", "the validator failed"));
  }
  if (exit.exited && exit.code == 0 && w.done) return;
  if (w.stalled) {
    refuse(w, "stopped responding (no progress for " +
                  std::to_string(static_cast<int>(m_request.limits.stallSeconds)) +
                  " s, the wall-time limit)");
  }
  if (!exit.exited) {
    if (exit.signal == SIGXCPU ||
        (exit.signal == SIGKILL && exit.cpuSeconds + 1 >= static_cast<double>(m_cpuLimit))) {
      refuse(w, "exceeded the CPU-time limit (" + std::to_string(m_cpuLimit) + " s)");
    }
    refuse(w, "crashed (" + signalName(exit.signal) + ")");
  }
  const std::string& err = w.process->stderrTail();
  const size_t asan = err.find("AddressSanitizer: ");
  if (asan != std::string::npos) {
    for (const char* memory :
         {"out of memory", "allocation-size-too-big", "requested allocation size", "rss limit"}) {
      if (err.find(memory, asan) != std::string::npos) {
        refuse(w, "exceeded the memory limit (" + mebibytes(m_request.limits.memoryBytes) + ")");
      }
    }
    const size_t begin = asan + std::strlen("AddressSanitizer: ");
    refuse(w,
           "crashed (AddressSanitizer: " + err.substr(begin, err.find_first_of(" \n", begin) - begin) + ")");
  }
  const size_t lastLine = err.find_last_not_of('\n');
  std::string tail;
  if (lastLine != std::string::npos) {
    const size_t start = err.rfind('\n', lastLine) + 1;  // npos + 1 == 0: the first line
    tail = err.substr(start, lastLine + 1 - start);
  }
  protocolError("exited with status " + std::to_string(exit.code) + " without a result" +
                (tail.empty() ? std::string() : ": " + tail.substr(0, 300)));
}

void Session::refuse(const Worker& w, const std::string& what) {
  for (Worker& other : m_workers) other.process->kill();
  throwBadInput(m_request.path, "",
                "the HDF5 library " + what + " while " + w.step + ": the file is damaged or hostile");
}

RunResult Session::collect() {
  RunResult result;
  result.codebookSets = m_codebookSets;
  if (m_request.kind == UntrustedKind::Dump) {
    if (!m_info) protocolError("finished without a header");
    result.info = *m_info;
    const size_t wanted = m_request.layers.empty() ? m_info->layers.size() : m_request.layers.size();
    if (m_request.statistics && m_stats.size() != wanted) {
      protocolError("reported statistics of " + std::to_string(m_stats.size()) + " of " +
                    std::to_string(wanted) + " layers");
    }
    std::sort(m_stats.begin(), m_stats.end(),
              [](const LayerStats& a, const LayerStats& b) { return a.layer < b.layer; });
    result.stats = std::move(m_stats);
  }
  return result;
}

}  // namespace

RunResult runValidators(const RunRequest& request, const OpenListener& listener, const TaskControl* control) {
  Session session(request, listener, control);
  return session.run();
}

}  // namespace kvq::isolate
