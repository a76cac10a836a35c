#include "kvq/base/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kvq/base/error.h"

namespace kvq {

std::string temporaryPathFor(const std::string& path) {
  // pid: unique across processes; the counter: across writers of one process (two
  // writers of the same path, e.g. GUI and a background task, must not share one).
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp-" + std::to_string(static_cast<long>(::getpid())) + "-" + std::to_string(counter++);
}

namespace {

// fsync of a closed file by path (HDF5 files are written through their own handle).
bool syncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool synced = ::fsync(fd) == 0;
  return ::close(fd) == 0 && synced;
}

}  // namespace

void discardTemporaryFile(const std::string& temporary) noexcept {
  std::error_code ec;
  std::filesystem::remove(temporary, ec);
}

void commitTemporaryFile(const std::string& temporary, const std::string& path) {
  // The content must be on disk before the rename makes it visible: otherwise a crash
  // can leave the new name pointing at an empty or partial file.
  if (!syncPath(temporary, O_RDONLY)) {
    const std::string reason = std::strerror(errno);
    discardTemporaryFile(temporary);
    throwBadInput(path, "", "cannot sync the finished temporary file to disk: " + reason);
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    discardTemporaryFile(temporary);
    throwBadInput(path, "", "cannot rename the finished temporary file into place: " + ec.message());
  }
  // Best effort: persist the rename itself (some file systems refuse fsync on a directory).
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  syncPath(parent.empty() ? std::string(".") : parent.string(), O_RDONLY | O_DIRECTORY);
}

void atomicWriteFile(const std::string& path, const std::string& content) {
  const std::string temporary = temporaryPathFor(path);
  std::FILE* f = std::fopen(temporary.c_str(), "wb");
  if (f == nullptr) throwBadInput(path, "", std::string("cannot create file: ") + std::strerror(errno));
  const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const bool flushed = std::fflush(f) == 0;  // commitTemporaryFile fsyncs
  const bool closed = std::fclose(f) == 0;
  if (!written || !flushed || !closed) {
    discardTemporaryFile(temporary);
    throwBadInput(path, "", "write failed (disk full or not writable)");
  }
  commitTemporaryFile(temporary, path);
}

}  // namespace kvq
