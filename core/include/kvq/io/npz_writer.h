// A minimal writer of NumPy .npz archives: a zip file of stored (uncompressed)
// .npy entries, each with a NumPy format v1.0 header. CRC-32 from zlib. Entries
// and the archive must stay below 4 GiB (no ZIP64); larger throws BadInput.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvq {

class NpzWriter {
 public:
  // data: row-major array of `shape` (empty shape = 0-d) with elements of `descr`
  // ("<f4", "<i4", "<u2", "<U12", ...); bytes = product(shape) * item size.
  void add(const std::string& name, const std::string& descr, const std::vector<int64_t>& shape,
           const void* data, size_t bytes);
  void addFloat32(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  void addInt32(const std::string& name, const std::vector<int64_t>& shape, const int32_t* data);
  // 0-d unicode array ("<U n", UTF-32LE); text must be ASCII.
  void addString(const std::string& name, const std::string& text);

  // The whole archive.
  std::string archive() const;
  // Writes the archive atomically.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;   // "<name>.npy"
    std::string bytes;  // the .npy file
  };
  std::vector<Entry> m_entries;
};

// The .npy file of one array (header v1.0, padded so the data starts at a multiple of 64).
std::string npyFile(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                    size_t bytes);

}  // namespace kvq
