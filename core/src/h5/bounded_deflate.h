// Process-wide HDF5 setup for untrusted files: a deflate filter of our own (zlib
// directly) in place of the library's, which never lets a chunk decode to more —
// or less — than its nominal size (gzip bombs, short chunks that overflow inside
// libhdf5), and no dynamic filter plugins. Private to kvq_core.
//
// HDF5's public H5Zregister refuses to replace a predefined filter ("unable to
// modify predefined filters"); the library's own H5Z_register, exported by the
// shared library, does replace it and is looked up with dlsym. Without it (another
// HDF5 build) the library's filter stays and boundedDeflateInstalled() says so.
#pragma once

#include <cstdint>
#include <string>

namespace kvq::h5 {

// Installs the filter and turns off plugin loading, once per process; every public
// entry point of the readers and writers calls it (through ErrorSilencer).
void setUpLibrary();
bool boundedDeflateInstalled();

// While alive, every deflate-compressed chunk read on this thread must decode to
// exactly `nominalBytes` bytes (the dataset's chunk size); reads with no limit in
// place are refused, so no read path can forget it. Nests.
class DecodeLimit {
 public:
  explicit DecodeLimit(uint64_t nominalBytes);
  ~DecodeLimit();
  DecodeLimit(const DecodeLimit&) = delete;
  DecodeLimit& operator=(const DecodeLimit&) = delete;

 private:
  uint64_t m_saved;
};

// Why the filter last refused a chunk on this thread ("" if it did not), and
// forgets it: "decodes to more than its nominal 4096 bytes".
std::string takeDecodeRefusal();

}  // namespace kvq::h5
