// Private state of DumpReader: filled by validateDump (dump_validate.h) at open,
// read through by dump_reader.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "h5/checked_dataset.h"
#include "h5/hdf5_handle.h"
#include "h5/pinned_file.h"
#include "kvq/dump/dump_reader.h"

namespace kvq::detail {

// One validated [T, H, D] dataset.
struct DatasetEntry {
  h5::Dataset dataset;
  h5::StorageInfo storage;  // checked at open; bounds every chunk read
  h5::Datatype memType;     // float32 native, or the file's 16-bit type in native order
  std::string path;         // "/layers/3/keys"
  Kind kind = Kind::Keys;
  int heads = 0;
  int64_t rows = 0;  // first dimension: T for keys/values, DumpInfo::queryTokens for queries
};

// keys, values, queries (indexed by Kind); keys and values always present.
using LayerEntry = std::array<std::optional<DatasetEntry>, 3>;

struct ReaderImpl {
  std::unique_ptr<h5::PinnedFile> pinned;  // the file HDF5 reads; outlives every handle below
  h5::File file;                           // closed after every dataset below
  OpenOptions options;
  DumpInfo info;
  std::map<int, LayerEntry> layers;
  h5::Dataset tokens;  // /tokens when present, checked at open
  h5::StorageInfo tokensStorage;

  // Throws Error(BadInput) when the layer or kind is absent.
  const DatasetEntry& dataset(int layer, Kind kind) const;
  // Reads tokens [tokenBegin, tokenBegin+tokenCount) (all heads, or one when
  // head >= 0) into slab.data, reusing its capacity. No range checks.
  void readInto(const DatasetEntry& entry, int64_t tokenBegin, int64_t tokenCount, int head,
                Slab& slab) const;
  // Streaming block size: `requested` tokens, capped by maxReadBytes and T.
  int64_t streamChunkTokens(int heads, int64_t requested) const;
};

}  // namespace kvq::detail

namespace kvq {
struct DumpReader::Impl : detail::ReaderImpl {};
}  // namespace kvq
