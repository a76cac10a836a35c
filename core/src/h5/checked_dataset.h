// How a dataset is stored, checked before any of its data is read, and reads that
// hold every chunk to its nominal size and name the chunk of a checksum mismatch.
// Used by the dump validator, the codebook reader and (through them) the isolated
// validator process. Private to kvq_core; failures are Error(BadInput) naming the
// file, the dataset's HDF5 path and the chunk.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "h5/hdf5_util.h"

namespace kvq::h5 {

// Largest nominal chunk accepted (the writers use at most 1 GiB; h5py ~1 MiB): a
// damaged header must not make HDF5 allocate gigabytes for one chunk.
constexpr uint64_t kMaxChunkBytes = uint64_t{1} << 30;

// What checkStorage learned; the reads below need it.
struct StorageInfo {
  std::vector<hsize_t> dims;   // the dataspace, [rows, ...]
  std::vector<hsize_t> chunk;  // chunk dims; empty unless chunked
  uint64_t chunkBytes = 0;     // nominal bytes of one chunk (0 unless chunked)
  bool fletcher32 = false;     // chunks carry a Fletcher-32 checksum
};

// Refuses, naming `where` and, for chunk problems, the chunk and its rows of
// dimension 0 called `rowName` ("tokens"): external raw storage; a virtual layout;
// filters other than shuffle, deflate and fletcher32 in that order; a chunk over
// kMaxChunkBytes; data never (fully) written; a chunk whose stored size does not
// fit its nominal size (exactly, when not compressed) or that lies past the end of
// the file. `dataset` must have a fixed-size element type and a simple dataspace.
StorageInfo checkStorage(hid_t dataset, const Location& where, const char* rowName);

// H5Dread of the selection (memSpace, fileSpace; H5S_ALL allowed) under a
// DecodeLimit of the dataset's chunk size. A failure is refused naming the rows
// [rowBegin, rowBegin + rowCount) of the read, narrowed to the one chunk at fault
// for a Fletcher-32 mismatch or a chunk that decodes to the wrong size.
void readChecked(hid_t dataset, const StorageInfo& storage, hid_t memType, hid_t memSpace, hid_t fileSpace,
                 void* buffer, const Location& where, const char* rowName, hsize_t rowBegin,
                 hsize_t rowCount);

// The whole of a dataset checked by checkStorage.
inline void readAllChecked(hid_t dataset, const StorageInfo& storage, hid_t memType, void* buffer,
                           const Location& where, const char* rowName) {
  readChecked(dataset, storage, memType, H5S_ALL, H5S_ALL, buffer, where, rowName, 0,
              storage.dims.empty() ? 1 : storage.dims[0]);
}

}  // namespace kvq::h5
