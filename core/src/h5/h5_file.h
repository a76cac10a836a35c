// Files the engine writes and reads besides dumps (codebook files, codes files),
// on top of the helpers of hdf5_util.h. Private to kvq_core. Every failure becomes
// an Error naming the file and the HDF5 path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "h5/checked_dataset.h"
#include "h5/hdf5_util.h"
#include "h5/pinned_file.h"

namespace kvq::h5 {

// Creates `temporary`; close() flushes it; the caller renames it over the target.
// Destroying a writer that was not closed removes the temporary file. Every
// dataset is chunked along dimension 0 and carries Fletcher-32 checksums.
class Writer {
 public:
  Writer(std::string path, std::string temporary);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  hid_t root() const { return m_file.get(); }
  // Creates the group at an absolute path with its parents (or opens it).
  Group createGroups(const std::string& path);
  void writeFloat32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape, const float* data);
  void writeInt32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape, const int32_t* data);
  // An empty dataset of a file type, to be filled by writeRows; chunks of
  // `chunkRows` rows (0: about 1 MiB), never over 64 MiB.
  Dataset createDataset(hid_t loc, const std::string& name, hid_t fileType, const std::vector<hsize_t>& shape,
                        hsize_t chunkRows = 0);
  // Writes rows [row, row+rows) along dimension 0 of a dataset of `shape`.
  void writeRows(hid_t dataset, hid_t memType, const std::vector<hsize_t>& shape, hsize_t row, hsize_t rows,
                 const void* data);
  void close();

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const;
  std::string m_path;
  std::string m_temporary;
  File m_file;
  bool m_closed = false;
};

// Reads a file under the policies of hdf5_util.h and checked_dataset.h: objects
// only through hard links, checked strings, storage checked before reading.
class Reader {
 public:
  // expected: the identity the isolated validator checked (nullptr: any file).
  explicit Reader(std::string path, const FileIdentity* expected = nullptr);
  hid_t root() const { return m_file.get(); }
  const std::string& path() const { return m_path; }

  // Required attributes ("missing required attribute 'x'" when absent).
  bool hasAttr(hid_t obj, const std::string& name) const;
  std::string stringAttr(hid_t obj, const std::string& name) const;
  int64_t intAttr(hid_t obj, const std::string& name) const;
  double doubleAttr(hid_t obj, const std::string& name) const;
  std::vector<double> doubleArrayAttr(hid_t obj, const std::string& name) const;  // at most 2^20 values

  // A group at an absolute path, every link on the way a hard link.
  Group openGroup(const std::string& path) const;
  // Names of the links in a group (at most maxLinks); numeric names sorted
  // numerically, others after, sorted.
  std::vector<std::string> children(const std::string& group, size_t maxLinks) const;
  // Reads a dataset that must have exactly `shape` (converted to float32 / int32);
  // `rowName` names dimension 0 in messages ("stages").
  std::vector<float> readFloat32(const std::string& dataset, const std::vector<hsize_t>& shape,
                                 const char* rowName) const;
  std::vector<int> readInt32(const std::string& dataset, const std::vector<hsize_t>& shape,
                             const char* rowName) const;

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const;
  Location at(hid_t obj) const { return Location{m_path, objectPath(obj)}; }
  // Checks the dataset's shape, class and storage, then reads all of it as memType (T's type).
  template <class T>
  std::vector<T> readChecked(const std::string& dataset, const std::vector<hsize_t>& shape, H5T_class_t cls,
                             hid_t memType, const char* rowName) const;
  std::string m_path;
  std::unique_ptr<PinnedFile> m_pinned;  // outlives m_file
  File m_file;
};

}  // namespace kvq::h5
