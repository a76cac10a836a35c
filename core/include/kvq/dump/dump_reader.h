// DumpReader — strict, lazy reader of dump format v1 (docs/dump-format.md).
//
// open() validates the structure (attributes, groups, ranks, shapes, dtypes, byte
// sizes) before anything sized by the file is allocated and, unless disabled,
// streams every dataset once in bounded chunks to refuse NaN/Inf. Reads afterwards
// go through HDF5 hyperslabs: a layer, a token range or one head, never the whole
// file. Every refusal is an Error(ErrorKind::BadInput) naming the file, the HDF5
// path (or value position) and the problem.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kvq/base/file_identity.h"
#include "kvq/base/task.h"
#include "kvq/dump/dump.h"

namespace kvq {

struct OpenOptions {
  bool scanValues = true;  // stream all data once to refuse NaN/Inf
  // The file as the isolated validator checked it (kvq/isolate/open_file.h): any
  // other file, or this one modified since, is refused before HDF5 reads a byte.
  std::optional<FileIdentity> expectedIdentity{};  // {}: callers may name only the fields they set
  // Largest float32 block one read() may allocate, in bytes.
  uint64_t maxReadBytes = uint64_t{8} << 30;
  const TaskControl* control = nullptr;  // progress/cancel of the value scan
};

class DumpReader {
 public:
  // Opens and validates `path`. Throws Error(BadInput) on any problem.
  static std::unique_ptr<DumpReader> open(const std::string& path, const OpenOptions& options = {});
  ~DumpReader();
  DumpReader(const DumpReader&) = delete;
  DumpReader& operator=(const DumpReader&) = delete;

  const DumpInfo& info() const;
  // The file opened (device, inode, size, mtime). Every read checks that it has not
  // been modified since: a changed file is refused, not read.
  const FileIdentity& identity() const;
  // True when the dump holds this layer and kind (queries are optional).
  bool has(int layer, Kind kind) const;

  // Reads tokens [tokenBegin, tokenBegin+tokenCount) of one layer and kind as
  // float32 [tokenCount, heads, D]; tokenCount < 0 means "to the end"; head >= 0
  // selects one head (heads = 1 in the result). Throws on an absent layer/kind,
  // an out-of-range request or a block larger than maxReadBytes.
  Slab read(int layer, Kind kind, int64_t tokenBegin = 0, int64_t tokenCount = -1, int head = -1) const;

  // Streams one layer/kind in blocks of at most chunkTokens tokens, in order.
  void forEachChunk(int layer, Kind kind, int64_t chunkTokens, const std::function<void(const Slab&)>& visit,
                    const TaskControl* control = nullptr) const;

  // /tokens as int32 (empty when absent).
  std::vector<int32_t> tokenIds() const;

  // True when readers may be used from two threads at once: the HDF5 library was
  // built thread-safe (Debian's is), so it serialises its own calls. When false,
  // every HDF5 call of the process must come from one thread.
  static bool concurrentReadsSafe();

 private:
  DumpReader();
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace kvq
