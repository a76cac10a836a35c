// Small HDF5 helpers for the files the engine writes and reads besides dumps
// (codebook files, codes files). Private to kvq_core. Every failure becomes an
// Error naming the file and the HDF5 path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "h5/hdf5_handle.h"

namespace kvq::h5io {

void writeAttr(hid_t obj, const std::string& name, const std::string& value);  // variable-length UTF-8
void writeAttr(hid_t obj, const std::string& name, int64_t value);
void writeAttr(hid_t obj, const std::string& name, double value);
void writeAttr(hid_t obj, const std::string& name, const std::vector<double>& values);  // [n] float64

// IEEE binary16 little-endian, as NumPy/h5py read float16 (caller owns the id).
h5::Datatype makeFloat16Type();

// Creates `temporary`; close() flushes it; the caller renames it over the target.
// Destroying a writer that was not closed removes the temporary file.
class Writer {
 public:
  Writer(std::string path, std::string temporary);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  hid_t root() const { return m_file.get(); }
  // Creates the group at an absolute path with its parents (or opens it).
  h5::Group createGroups(const std::string& path);
  void writeFloat32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape, const float* data);
  void writeInt32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape, const int32_t* data);
  // An empty dataset of a file type, to be filled by writeRows.
  h5::Dataset createDataset(hid_t loc, const std::string& name, hid_t fileType,
                            const std::vector<hsize_t>& shape);
  // Writes rows [row, row+rows) along dimension 0 of a dataset of `shape`.
  void writeRows(hid_t dataset, hid_t memType, const std::vector<hsize_t>& shape, hsize_t row, hsize_t rows,
                 const void* data);
  void close();

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const;
  std::string m_path;
  std::string m_temporary;
  h5::File m_file;
  bool m_closed = false;
};

class Reader {
 public:
  explicit Reader(std::string path);
  hid_t root() const { return m_file.get(); }
  const std::string& path() const { return m_path; }

  bool hasAttr(hid_t obj, const std::string& name) const;
  std::string stringAttr(hid_t obj, const std::string& name) const;
  int64_t intAttr(hid_t obj, const std::string& name) const;
  double doubleAttr(hid_t obj, const std::string& name) const;
  std::vector<double> doubleArrayAttr(hid_t obj, const std::string& name) const;

  h5::Group openGroup(const std::string& path) const;
  // Names of the links in a group; numeric names sorted numerically, others after, sorted.
  std::vector<std::string> children(const std::string& group) const;
  // Reads a dataset that must have exactly `shape` (converted to float32 / int32).
  std::vector<float> readFloat32(const std::string& dataset, const std::vector<hsize_t>& shape) const;
  std::vector<int> readInt32(const std::string& dataset, const std::vector<hsize_t>& shape) const;

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const;
  h5::Dataset openChecked(const std::string& dataset, const std::vector<hsize_t>& shape) const;
  std::string m_path;
  h5::File m_file;
};

}  // namespace kvq::h5io
