#include "progress_bar.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kvq::cli {

namespace {

std::atomic<bool> g_interrupted{false};

extern "C" void onInterrupt(int /*signal*/) {
  if (g_interrupted.exchange(true)) {  // the second Ctrl-C: do not wait for the next check
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

}  // namespace

ProgressBar::ProgressBar(bool force)
    : m_enabled(force || isatty(STDERR_FILENO) != 0), m_start(std::chrono::steady_clock::now()) {
  m_control.cancel = &g_interrupted;
  std::signal(SIGINT, onInterrupt);
  if (m_enabled) {
    m_control.onProgress = [this](double fraction, const std::string& stage) { draw(fraction, stage); };
  }
}

ProgressBar::~ProgressBar() {
  finish();
  std::signal(SIGINT, SIG_DFL);
}

void ProgressBar::draw(double fraction, const std::string& stage) {
  const auto now = std::chrono::steady_clock::now();
  // Redraw at most 10 times a second, but always draw completion.
  if (m_drawn && fraction < 1.0 && now - m_lastDraw < std::chrono::milliseconds(100)) return;
  m_lastDraw = now;
  fraction = std::clamp(fraction, 0.0, 1.0);
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(std::lround(fraction * kWidth));
  const double elapsed = std::chrono::duration<double>(now - m_start).count();
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char eta[32] = "";
  if (fraction > 0.02 && fraction < 1.0) {
    std::snprintf(eta, sizeof eta, " ~%.0fs left", elapsed * (1.0 - fraction) / fraction);
  }
  std::fprintf(stderr, "\r[%s] %3.0f%% %-28.28s%s\033[K", bar.c_str(), fraction * 100.0, stage.c_str(), eta);
  std::fflush(stderr);
  m_drawn = true;
}

void ProgressBar::finish() {
  if (m_enabled && m_drawn) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    m_drawn = false;
  }
}

}  // namespace kvq::cli
