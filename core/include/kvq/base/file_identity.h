// FileIdentity — which file on disk, and which version of it: device, inode, size
// and modification time. A file validated in the isolated validator is read
// in-process only while its identity still matches (docs/reliability.md): a file
// swapped or rewritten after validation is refused, never parsed unchecked.
#pragma once

#include <cstdint>
#include <string>

namespace kvq {

struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;    // bytes
  int64_t mtimeNs = 0;  // modification time, nanoseconds since the epoch

  bool operator==(const FileIdentity&) const = default;
};

// The identity of the regular file at path. Throws Error(BadInput) naming the file
// with the reader's wording: "no such file", "is a directory, not a dump file",
// "is not a regular file".
FileIdentity identifyFile(const std::string& path);
// The identity of an open file descriptor (fstat). Throws Error(Internal) on failure.
FileIdentity identifyOpenFile(int fd, const std::string& path);

// Throws Error(BadInput) naming path when actual differs from expected: the file was
// replaced or modified after it was validated.
void requireSameFile(const std::string& path, const FileIdentity& expected, const FileIdentity& actual);

}  // namespace kvq
