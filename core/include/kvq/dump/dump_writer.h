// DumpWriter — writes dump format v1. Used by `kvq synth`, the tests and tools.
//
// The file is written to "<path>.tmp-<pid>-<n>" and renamed over `path` by commit(),
// so a reader never sees a half-written dump; destroying an uncommitted writer
// removes the temporary file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

struct DumpHeader {
  std::string model;
  int numLayers = 0;
  int numKvHeads = 0;
  int headDim = 0;
  int numQHeads = 0;  // 0: no queries will be written
  std::string keyRope = "pre";
  std::optional<double> ropeTheta;
  std::optional<int> ropeDim;
  std::optional<std::string>
      ropeLayout;                   // "half" or "interleaved"; absent: not written (readers assume "half")
  std::vector<double> ropeInvFreq;  // [rope_dim/2] written as /rope_inv_freq when not empty
  std::optional<double> attentionScale;  // softmax scale when it is not 1/sqrt(D)
  // Tokens whose queries are stored (ascending, < tokens), written as /query_positions;
  // empty: queries hold every token.
  std::vector<int64_t> queryPositions;
  std::string source;
  DType dtype = DType::Float16;  // storage type on disk
  int64_t tokens = 0;
  bool gzip = true;       // gzip level 4 + shuffle, chunks [min(T,1024), H, D]
  bool checksums = true;  // Fletcher-32 per chunk of every dataset (readers refuse a mismatch)
};

class DumpWriter {
 public:
  static std::unique_ptr<DumpWriter> create(const std::string& path, const DumpHeader& header);
  ~DumpWriter();
  DumpWriter(const DumpWriter&) = delete;
  DumpWriter& operator=(const DumpWriter&) = delete;

  // keys/values: [tokens, numKvHeads, headDim]; queries: [Tq, numQHeads, headDim] with
  // Tq = tokens, or queryPositions.size() when the header names query positions
  // (pass nullptr to omit). float32 in memory, converted to header.dtype on disk.
  void writeLayer(int layer, const Slab& keys, const Slab& values, const Slab* queries = nullptr);
  void writeTokenIds(const std::vector<int32_t>& ids);           // [tokens]
  void writeSequenceStarts(const std::vector<int64_t>& starts);  // [S]
  // Closes the file and atomically renames it into place.
  void commit();

 private:
  DumpWriter();
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace kvq
