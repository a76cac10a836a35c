// PinnedFile — a file opened once by path and then handed to HDF5 by descriptor
// (/proc/self/fd/N), so HDF5 parses exactly the file whose identity was checked:
// a file renamed or replaced between the check and H5Fopen is never read.
// Kept open for the reader's lifetime, it also lets the reader notice a file
// modified in place after validation (stillUnchanged()).
#pragma once

#include <string>

#include "kvq/base/file_identity.h"

namespace kvq::h5 {

class PinnedFile {
 public:
  // Opens path read-only. Throws Error(BadInput) naming path ("no such file", "is a
  // directory, not a dump file", ...); when expected is given, also when the file
  // opened is not that file (requireSameFile's message).
  PinnedFile(const std::string& path, const FileIdentity* expected);
  ~PinnedFile();
  PinnedFile(const PinnedFile&) = delete;
  PinnedFile& operator=(const PinnedFile&) = delete;

  // The name to give H5Fopen/H5Fis_hdf5: "/proc/self/fd/N", or the path itself where
  // /proc is not mounted.
  const std::string& hdf5Name() const { return m_hdf5Name; }
  const FileIdentity& identity() const { return m_identity; }
  // Throws Error(BadInput) naming the file when it was modified since it was pinned.
  void requireUnchanged() const;

 private:
  std::string m_path;
  std::string m_hdf5Name;
  FileIdentity m_identity;
  int m_fd = -1;
};

}  // namespace kvq::h5
