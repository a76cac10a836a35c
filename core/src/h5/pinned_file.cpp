#include "h5/pinned_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kvq/base/error.h"

namespace kvq::h5 {

PinnedFile::PinnedFile(const std::string& path, const FileIdentity* expected) : m_path(path) {
  // stat first: the reader's wording for missing files and directories.
  const FileIdentity byPath = identifyFile(path);
  m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (m_fd < 0) throwBadInput(path, "", std::string("cannot open the file (") + std::strerror(errno) + ")");
  m_identity = identifyOpenFile(m_fd, path);
  if (expected != nullptr) requireSameFile(path, *expected, m_identity);
  if (!(byPath == m_identity)) requireSameFile(path, byPath, m_identity);  // swapped between stat and open
  const std::string procName = "/proc/self/fd/" + std::to_string(m_fd);
  struct stat st {};
  m_hdf5Name = ::stat(procName.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_ino) == m_identity.inode
                   ? procName
                   : path;
}

PinnedFile::~PinnedFile() {
  if (m_fd >= 0) ::close(m_fd);
}

void PinnedFile::requireUnchanged() const {
  requireSameFile(m_path, m_identity, identifyOpenFile(m_fd, m_path));
}

}  // namespace kvq::h5
