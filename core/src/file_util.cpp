#include "kvq/file_util.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kvq/error.h"

namespace kvq {

std::string temporaryPathFor(const std::string& path) {
  return path + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
}

void discardTemporaryFile(const std::string& temporary) noexcept {
  std::error_code ec;
  std::filesystem::remove(temporary, ec);
}

void commitTemporaryFile(const std::string& temporary, const std::string& path) {
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    discardTemporaryFile(temporary);
    throwBadInput(path, "", "cannot rename the finished temporary file into place: " + ec.message());
  }
}

void atomicWriteFile(const std::string& path, const std::string& content) {
  const std::string temporary = temporaryPathFor(path);
  std::FILE* f = std::fopen(temporary.c_str(), "wb");
  if (f == nullptr) throwBadInput(path, "", std::string("cannot create file: ") + std::strerror(errno));
  const bool written = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  const bool flushed = std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!written || !flushed || !closed) {
    discardTemporaryFile(temporary);
    throwBadInput(path, "", "write failed (disk full or not writable)");
  }
  commitTemporaryFile(temporary, path);
}

}  // namespace kvq
