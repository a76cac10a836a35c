// ChildProcess — one validator process: started with limits, read line by line,
// killed with its whole process group. POSIX (Linux) only; private to kvq_core.
//
// The child runs in its own process group with stdin on /dev/null and stdout and
// stderr on pipes; before exec it gets RLIMIT_AS (address space), RLIMIT_CPU (CPU
// seconds; SIGXCPU, then SIGKILL a few seconds later) and RLIMIT_CORE 0, and
// PR_SET_PDEATHSIG so it dies with the thread that started it. Between fork and
// exec it only makes async-signal-safe calls: the GUI forks from a threaded process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kvq::isolate {

struct ChildLimits {
  uint64_t addressSpaceBytes = 0;  // RLIMIT_AS; 0 = unlimited
  uint64_t cpuSeconds = 0;         // RLIMIT_CPU; 0 = unlimited
};

// How a child ended.
struct ChildExit {
  bool exited = false;  // normal exit: code is valid; otherwise signal is
  int code = 0;
  int signal = 0;
  double cpuSeconds = 0;  // user + system time the child used
};

class ChildProcess {
 public:
  // Starts exe with args (argv[0] is exe) and the environment plus setEnv
  // ("NAME=value", replacing NAME). Throws Error(Internal) naming exe when it cannot
  // start (missing, not executable, exec failed).
  ChildProcess(const std::string& exe, const std::vector<std::string>& args, const ChildLimits& limits,
               const std::vector<std::string>& setEnv);
  // Kills the process group (if still running) and reaps the child.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return m_pid; }
  int stdoutFd() const { return m_out; }  // non-blocking; -1 after EOF
  int stderrFd() const { return m_err; }  // non-blocking; -1 after EOF
  bool running() const { return m_out >= 0 || m_err >= 0; }

  // Reads what stdout holds now and appends each complete line (without '\n') to
  // lines. Throws Error(Internal) when one line exceeds maxLine bytes.
  void readLines(std::vector<std::string>& lines, size_t maxLine);
  // Reads what stderr holds now, keeping its last 8 KiB (stderrTail()).
  void readStderr();
  const std::string& stderrTail() const { return m_stderr; }

  // SIGKILL to the child's process group (idempotent).
  void kill();
  // Blocks until the child has exited; closes the pipes.
  ChildExit wait();

 private:
  pid_t m_pid = -1;
  int m_out = -1;
  int m_err = -1;
  std::string m_partial;  // stdout bytes after the last '\n'
  std::string m_stderr;
  bool m_reaped = false;
  ChildExit m_exit;
};

// "SIGSEGV", "SIGKILL", ... ("signal N" for others).
std::string signalName(int signal);

}  // namespace kvq::isolate
