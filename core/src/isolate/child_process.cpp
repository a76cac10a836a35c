#include "isolate/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "kvq/base/error.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in unistd.h with C++

namespace kvq::isolate {
namespace {

constexpr size_t kStderrKeep = 8 << 10;

// argv/envp as the C arrays execve wants, built before fork (no allocation after).
struct ExecArrays {
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;

  ExecArrays(const std::string& exe, const std::vector<std::string>& extra,
             const std::vector<std::string>& set) {
    args.push_back(exe);
    args.insert(args.end(), extra.begin(), extra.end());
    auto nameOf = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string entry(*e);
      bool replaced = false;
      for (const std::string& s : set) replaced = replaced || nameOf(s) == nameOf(entry);
      if (!replaced) env.push_back(entry);
    }
    env.insert(env.end(), set.begin(), set.end());
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
};

void setLimit(int resource, uint64_t soft, uint64_t hard) {
  const struct rlimit limit { static_cast<rlim_t>(soft), static_cast<rlim_t>(hard) };
  ::setrlimit(resource, &limit);
}

// The child between fork and exec: async-signal-safe calls only.
[[noreturn]] void execChild(const ExecArrays& exec, const ChildLimits& limits, pid_t parent, int devNull,
                            int out, int err, int report) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (limits.addressSpaceBytes > 0) setLimit(RLIMIT_AS, limits.addressSpaceBytes, limits.addressSpaceBytes);
  if (limits.cpuSeconds > 0) setLimit(RLIMIT_CPU, limits.cpuSeconds, limits.cpuSeconds + 5);
  setLimit(RLIMIT_CORE, 0, 0);  // a hostile file's crash leaves no core files behind
  if (::dup2(devNull, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(127);
  // Nothing else of the parent's (X connection, files, sockets) reaches the child.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  ::execve(exec.argv[0], exec.argv.data(), exec.envp.data());
  const int error = errno;
  [[maybe_unused]] const ssize_t written = ::write(report, &error, sizeof error);
  ::_exit(127);
}

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

ChildProcess::ChildProcess(const std::string& exe, const std::vector<std::string>& args,
                           const ChildLimits& limits, const std::vector<std::string>& setEnv) {
  const ExecArrays exec(exe, args, setEnv);
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  const int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devNull < 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(report, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    for (int fd : {devNull, out[0], out[1], err[0], err[1], report[0], report[1]}) closeFd(fd);
    throwInternal(exe, "cannot start the validator: " + why);
  }
  const pid_t parent = ::getpid();
  m_pid = ::fork();
  if (m_pid == 0) execChild(exec, limits, parent, devNull, out[1], err[1], report[1]);
  const int forkError = errno;
  for (int fd : {devNull, out[1], err[1], report[1]}) ::close(fd);
  if (m_pid < 0) {
    for (int fd : {out[0], err[0], report[0]}) ::close(fd);
    throwInternal(exe,
                  std::string("cannot start the validator: fork failed (") + std::strerror(forkError) + ")");
  }
  ::setpgid(m_pid, m_pid);  // also here: no window in which kill(-pid) misses it
  m_out = out[0];
  m_err = err[0];
  int execError = 0;
  ssize_t got = 0;
  do {
    got = ::read(report[0], &execError, sizeof execError);
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof execError)) {
    wait();
    throwInternal(exe, std::string("cannot start the validator: ") + std::strerror(execError));
  }
  ::fcntl(m_out, F_SETFL, ::fcntl(m_out, F_GETFL) | O_NONBLOCK);
  ::fcntl(m_err, F_SETFL, ::fcntl(m_err, F_GETFL) | O_NONBLOCK);
}

ChildProcess::~ChildProcess() {
  if (!m_reaped) {
    kill();
    wait();
  }
}

void ChildProcess::readLines(std::vector<std::string>& lines, size_t maxLine) {
  char buffer[65536];
  while (m_out >= 0) {
    const ssize_t n = ::read(m_out, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: nothing more now
    if (n == 0) {
      closeFd(m_out);  // EOF; a partial last line is dropped (the child died mid-write)
      break;
    }
    size_t begin = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      if (buffer[i] != '\n') continue;
      m_partial.append(buffer + begin, i - begin);
      lines.push_back(std::move(m_partial));
      m_partial.clear();
      begin = i + 1;
    }
    m_partial.append(buffer + begin, static_cast<size_t>(n) - begin);
    if (m_partial.size() > maxLine) {
      kill();
      throwInternal("validator", "an output line exceeds " + std::to_string(maxLine) + " bytes");
    }
  }
}

void ChildProcess::readStderr() {
  char buffer[8192];
  while (m_err >= 0) {
    const ssize_t n = ::read(m_err, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (n == 0) {
      closeFd(m_err);
      break;
    }
    m_stderr.append(buffer, static_cast<size_t>(n));
    if (m_stderr.size() > kStderrKeep) m_stderr.erase(0, m_stderr.size() - kStderrKeep);
  }
}

void ChildProcess::kill() {
  if (m_reaped || m_pid <= 0) return;
  ::kill(-m_pid, SIGKILL);
  ::kill(m_pid, SIGKILL);
}

ChildExit ChildProcess::wait() {
  if (!m_reaped && m_pid > 0) {
    int status = 0;
    pid_t r = 0;
    struct rusage usage {};
    do {
      r = ::wait4(m_pid, &status, 0, &usage);
    } while (r < 0 && errno == EINTR);
    m_reaped = true;
    m_exit.cpuSeconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                        1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    if (r == m_pid && WIFEXITED(status)) {
      m_exit.exited = true;
      m_exit.code = WEXITSTATUS(status);
    } else if (r == m_pid && WIFSIGNALED(status)) {
      m_exit.signal = WTERMSIG(status);
    }
  }
  readStderr();
  closeFd(m_out);
  closeFd(m_err);
  return m_exit;
}

std::string signalName(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGABRT:
      return "SIGABRT";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGKILL:
      return "SIGKILL";
    case SIGXCPU:
      return "SIGXCPU";
    case SIGTERM:
      return "SIGTERM";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return "signal " + std::to_string(signal);
  }
}

}  // namespace kvq::isolate
