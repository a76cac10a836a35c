#include "kvq/base/file_identity.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "kvq/base/error.h"

namespace kvq {
namespace {

FileIdentity fromStat(const struct stat& st) {
  FileIdentity id;
  id.device = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<uint64_t>(st.st_size);
  id.mtimeNs =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + static_cast<int64_t>(st.st_mtim.tv_nsec);
  return id;
}

}  // namespace

FileIdentity identifyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) throwBadInput(path, "", "no such file");
    throwBadInput(path, "", std::string("cannot read the file (") + std::strerror(errno) + ")");
  }
  if (S_ISDIR(st.st_mode)) throwBadInput(path, "", "is a directory, not a dump file");
  if (!S_ISREG(st.st_mode)) throwBadInput(path, "", "is not a regular file");
  return fromStat(st);
}

FileIdentity identifyOpenFile(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throwInternal(path, std::string("fstat failed: ") + std::strerror(errno));
  return fromStat(st);
}

void requireSameFile(const std::string& path, const FileIdentity& expected, const FileIdentity& actual) {
  if (expected == actual) return;
  std::string what;
  if (expected.device != actual.device || expected.inode != actual.inode) {
    what = "another file now has this name";
  } else if (expected.size != actual.size) {
    what = "its size changed from " + std::to_string(expected.size) + " to " + std::to_string(actual.size) +
           " bytes";
  } else {
    what = "it was modified";
  }
  throwBadInput(path, "", "the file changed after it was validated (" + what + "); open it again");
}

}  // namespace kvq
