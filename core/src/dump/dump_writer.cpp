// DumpWriter: dump format v1 through the HDF5 C API, atomically (temp + rename).
#include "kvq/dump/dump_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "h5/hdf5_util.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/base/half.h"

namespace kvq {

struct DumpWriter::Impl {
  std::string path;
  std::string tempPath;
  DumpHeader header;
  h5::File file;  // declared before the group: closed last
  h5::Group layers;
  h5::PropList gcpl;
  std::set<int> written;
  bool tokenIdsWritten = false;
  bool sequenceStartsWritten = false;
  bool queriesWritten = false;
  bool committed = false;

  [[noreturn]] void fail(const std::string& where, const std::string& problem) const {
    throw Error(ErrorKind::Internal, path, where, problem);
  }
  [[noreturn]] void misuse(const std::string& where, const std::string& problem) const {
    throwBadInput(path, where, problem);
  }
  // Group creation properties without timestamps (reproducible files).
  hid_t groupCreation() {
    if (!gcpl) {
      gcpl = h5::PropList(H5Pcreate(H5P_GROUP_CREATE));
      H5Pset_obj_track_times(gcpl.get(), 0);
    }
    return gcpl.get();
  }
  void requireOpen(const std::string& where) const {
    if (committed || !file) misuse(where, "the writer was already committed");
  }
  // Rows of a dataset: T, or the number of query positions for queries.
  int64_t rowsFor(bool queries) const {
    return queries && !header.queryPositions.empty() ? static_cast<int64_t>(header.queryPositions.size())
                                                     : header.tokens;
  }
  void checkSlab(const Slab& slab, int heads, int64_t rows, const std::string& where) const;
  void writeSlab(hid_t group, const char* name, const Slab& slab, int heads, int64_t rows,
                 const std::string& where) const;
  void writeVector(const char* name, hid_t fileType, hid_t memType, const void* data, size_t count) const;
};

namespace {

void checkHeader(const std::string& path, const DumpHeader& h) {
  auto bad = [&](const std::string& problem) { throwBadInput(path, "dump header", problem); };
  if (h.numLayers <= 0 || h.numKvHeads <= 0 || h.headDim <= 0 || h.numQHeads < 0) {
    bad("numLayers, numKvHeads and headDim must be positive, numQHeads non-negative");
  }
  if (h.tokens <= 0) bad("tokens must be positive");
  if (h.keyRope != "pre" && h.keyRope != "post") bad("keyRope must be \"pre\" or \"post\"");
  if (h.ropeDim && (*h.ropeDim <= 0 || *h.ropeDim > h.headDim || *h.ropeDim % 2 != 0)) {
    bad("ropeDim must be even and in [2, headDim]");
  }
  if (h.ropeTheta && !(*h.ropeTheta > 0)) bad("ropeTheta must be positive");
  if (h.ropeLayout && *h.ropeLayout != "half" && *h.ropeLayout != "interleaved")
    bad("ropeLayout must be \"half\" or \"interleaved\"");
  if (!h.ropeInvFreq.empty()) {
    if (h.ropeInvFreq.size() != static_cast<size_t>(h.ropeDim.value_or(h.headDim) / 2))
      bad("ropeInvFreq must hold ropeDim/2 entries");
    for (double f : h.ropeInvFreq) {
      if (!std::isfinite(f) || f <= 0) bad("ropeInvFreq entries must be finite and positive");
    }
  }
  if (h.attentionScale && !(std::isfinite(*h.attentionScale) && *h.attentionScale > 0))
    bad("attentionScale must be positive");
  for (size_t i = 0; i < h.queryPositions.size(); ++i) {
    const int64_t p = h.queryPositions[i];
    if (p < 0 || p >= h.tokens || (i > 0 && p <= h.queryPositions[i - 1]))
      bad("queryPositions must ascend strictly within [0, tokens)");
  }
}

}  // namespace

DumpWriter::DumpWriter() : m_impl(std::make_unique<Impl>()) {}

DumpWriter::~DumpWriter() {
  if (m_impl->committed) return;
  h5::ErrorSilencer silence;
  m_impl->layers.reset();
  m_impl->file.reset();
  std::error_code ec;
  std::filesystem::remove(m_impl->tempPath, ec);  // best effort: a destructor must not throw
}

std::unique_ptr<DumpWriter> DumpWriter::create(const std::string& path, const DumpHeader& header) {
  h5::ErrorSilencer silence;
  checkHeader(path, header);
  std::unique_ptr<DumpWriter> writer(new DumpWriter());
  Impl& impl = *writer->m_impl;
  impl.path = path;
  impl.tempPath = temporaryPathFor(path);
  impl.header = header;
  impl.file = h5::File(H5Fcreate(impl.tempPath.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!impl.file) throwBadInput(path, "", "cannot create the file (" + h5::lastErrorText() + ")");

  const hid_t root = impl.file.get();
  h5::writeAttr(root, "kvq_format", "kv-dump");
  h5::writeAttr(root, "kvq_format_version", int64_t{1});
  h5::writeAttr(root, "model", header.model);
  h5::writeAttr(root, "num_layers", int64_t{header.numLayers});
  h5::writeAttr(root, "num_kv_heads", int64_t{header.numKvHeads});
  h5::writeAttr(root, "head_dim", int64_t{header.headDim});
  if (header.numQHeads > 0) h5::writeAttr(root, "num_q_heads", int64_t{header.numQHeads});
  h5::writeAttr(root, "key_rope", header.keyRope);
  if (header.ropeTheta) h5::writeAttr(root, "rope_theta", *header.ropeTheta);
  if (header.ropeDim) h5::writeAttr(root, "rope_dim", int64_t{*header.ropeDim});
  if (header.ropeLayout) h5::writeAttr(root, "rope_layout", *header.ropeLayout);
  if (header.attentionScale) h5::writeAttr(root, "attention_scale", *header.attentionScale);
  if (!header.source.empty()) h5::writeAttr(root, "source", header.source);
  if (!header.ropeInvFreq.empty()) {
    impl.writeVector("rope_inv_freq", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, header.ropeInvFreq.data(),
                     header.ropeInvFreq.size());
  }
  if (!header.queryPositions.empty()) {
    impl.writeVector("query_positions", H5T_STD_I64LE, H5T_NATIVE_INT64, header.queryPositions.data(),
                     header.queryPositions.size());
  }

  impl.layers = h5::Group(H5Gcreate2(root, "layers", H5P_DEFAULT, impl.groupCreation(), H5P_DEFAULT));
  if (!impl.layers) impl.fail("/layers", "cannot create the group: " + h5::lastErrorText());
  return writer;
}

void DumpWriter::Impl::checkSlab(const Slab& slab, int heads, int64_t rows, const std::string& where) const {
  const DumpHeader& h = header;
  if (slab.tokens != rows || slab.heads != heads || slab.dim != h.headDim ||
      slab.data.size() !=
          static_cast<size_t>(rows) * static_cast<size_t>(heads) * static_cast<size_t>(h.headDim)) {
    misuse(where, "slab shape [" + std::to_string(slab.tokens) + ", " + std::to_string(slab.heads) + ", " +
                      std::to_string(slab.dim) + "] (" + std::to_string(slab.data.size()) +
                      " values) does not match [" + std::to_string(rows) + ", " + std::to_string(heads) +
                      ", " + std::to_string(h.headDim) + "]");
  }
}

// Writes one [T, heads, D] dataset in chunk-sized token blocks, converting each
// block to the storage type (bounded extra memory).
void DumpWriter::Impl::writeSlab(hid_t group, const char* name, const Slab& slab, int heads, int64_t rows,
                                 const std::string& where) const {
  const DumpHeader& h = header;
  checkSlab(slab, heads, rows, where);
  const size_t perToken = static_cast<size_t>(heads) * static_cast<size_t>(h.headDim);
  // HDF5 chunks must stay under 4 GiB; 1024 tokens unless a token is huge.
  const auto maxChunkTokens = static_cast<int64_t>(std::max<size_t>(1, (size_t{1} << 30) / (perToken * 4)));
  const int64_t chunkTokens = std::min<int64_t>({rows, 1024, maxChunkTokens});

  h5::Datatype fileType;
  h5::Datatype memType;
  if (h.dtype == DType::Float16) {
    fileType = h5::makeHalfType();
    memType = h5::makeHalfType();
    H5Tset_order(memType.get(), H5Tget_order(H5T_NATIVE_USHORT));  // raw bits, no numeric conversion
  } else if (h.dtype == DType::BFloat16) {
    fileType = h5::Datatype(H5Tcopy(H5T_STD_U16LE));
    memType = h5::Datatype(H5Tcopy(H5T_NATIVE_UINT16));
  } else {
    fileType = h5::Datatype(H5Tcopy(H5T_IEEE_F32LE));
    memType = h5::Datatype(H5Tcopy(H5T_NATIVE_FLOAT));
  }
  const hsize_t dims[3] = {static_cast<hsize_t>(rows), static_cast<hsize_t>(heads),
                           static_cast<hsize_t>(h.headDim)};
  const hsize_t chunk[3] = {static_cast<hsize_t>(chunkTokens), dims[1], dims[2]};
  h5::Dataspace space(H5Screate_simple(3, dims, nullptr));
  h5::PropList dcpl(H5Pcreate(H5P_DATASET_CREATE));
  // No object timestamps: the same data gives the same file bytes.
  // Filters in the order readers accept: shuffle, deflate, then the checksum of the stored bytes.
  if (!space || !dcpl || H5Pset_chunk(dcpl.get(), 3, chunk) < 0 ||
      H5Pset_obj_track_times(dcpl.get(), 0) < 0 ||
      (h.gzip && (H5Pset_shuffle(dcpl.get()) < 0 || H5Pset_deflate(dcpl.get(), 4) < 0)) ||
      (h.checksums && H5Pset_fletcher32(dcpl.get()) < 0)) {
    fail(where, "cannot set up the dataset layout: " + h5::lastErrorText());
  }
  h5::Dataset ds(H5Dcreate2(group, name, fileType.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!ds) fail(where, "cannot create the dataset: " + h5::lastErrorText());
  if (h.dtype == DType::BFloat16) h5::writeAttr(ds.get(), "dtype", "bfloat16");

  std::vector<uint16_t> narrow;
  for (int64_t t = 0; t < rows; t += chunkTokens) {
    const int64_t n = std::min(chunkTokens, rows - t);
    const float* src = slab.data.data() + static_cast<size_t>(t) * perToken;
    const size_t count = static_cast<size_t>(n) * perToken;
    const void* buffer = src;
    if (h.dtype != DType::Float32) {
      narrow.resize(count);
      if (h.dtype == DType::Float16) {
        std::transform(src, src + count, narrow.begin(), floatToHalf);
      } else {
        std::transform(src, src + count, narrow.begin(), floatToBfloat16);
      }
      buffer = narrow.data();
    }
    const hsize_t start[3] = {static_cast<hsize_t>(t), 0, 0};
    const hsize_t blockDims[3] = {static_cast<hsize_t>(n), dims[1], dims[2]};
    h5::Dataspace fileSpace(H5Dget_space(ds.get()));
    h5::Dataspace memSpace(H5Screate_simple(3, blockDims, nullptr));
    if (H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start, nullptr, blockDims, nullptr) < 0 ||
        H5Dwrite(ds.get(), memType.get(), memSpace.get(), fileSpace.get(), H5P_DEFAULT, buffer) < 0) {
      fail(where, "cannot write tokens from " + std::to_string(t) + ": " + h5::lastErrorText());
    }
  }
}

void DumpWriter::writeLayer(int layer, const Slab& keys, const Slab& values, const Slab* queries) {
  h5::ErrorSilencer silence;
  Impl& impl = *m_impl;
  const std::string where = "/layers/" + std::to_string(layer);
  impl.requireOpen(where);
  if (layer < 0 || layer >= impl.header.numLayers) {
    impl.misuse(where, "layer index outside [0, " + std::to_string(impl.header.numLayers) + ")");
  }
  if (impl.written.count(layer) != 0) impl.misuse(where, "layer written twice");
  if (queries != nullptr && impl.header.numQHeads == 0)
    impl.misuse(where, "queries given but numQHeads is 0");
  // Check every slab before creating anything, so a refused call leaves no trace.
  const int64_t T = impl.rowsFor(false), Tq = impl.rowsFor(true);
  impl.checkSlab(keys, impl.header.numKvHeads, T, where + "/keys");
  impl.checkSlab(values, impl.header.numKvHeads, T, where + "/values");
  if (queries != nullptr) impl.checkSlab(*queries, impl.header.numQHeads, Tq, where + "/queries");
  h5::Group group(H5Gcreate2(impl.layers.get(), std::to_string(layer).c_str(), H5P_DEFAULT,
                             impl.groupCreation(), H5P_DEFAULT));
  if (!group) impl.fail(where, "cannot create the group: " + h5::lastErrorText());
  impl.writeSlab(group.get(), "keys", keys, impl.header.numKvHeads, T, where + "/keys");
  impl.writeSlab(group.get(), "values", values, impl.header.numKvHeads, T, where + "/values");
  if (queries != nullptr)
    impl.writeSlab(group.get(), "queries", *queries, impl.header.numQHeads, Tq, where + "/queries");
  impl.queriesWritten = impl.queriesWritten || queries != nullptr;
  impl.written.insert(layer);
}

void DumpWriter::Impl::writeVector(const char* name, hid_t fileType, hid_t memType, const void* data,
                                   size_t count) const {
  const std::string where = std::string("/") + name;
  const hsize_t dims[1] = {static_cast<hsize_t>(count)};
  h5::Dataspace space(H5Screate_simple(1, dims, nullptr));
  h5::PropList dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_obj_track_times(dcpl.get(), 0);
  if (header.checksums) {
    const hsize_t chunk[1] = {std::min<hsize_t>(dims[0], 65536)};
    if (H5Pset_chunk(dcpl.get(), 1, chunk) < 0 || H5Pset_fletcher32(dcpl.get()) < 0) {
      fail(where, "cannot set up the dataset layout: " + h5::lastErrorText());
    }
  }
  h5::Dataset ds(H5Dcreate2(file.get(), name, fileType, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!ds || H5Dwrite(ds.get(), memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(where, "cannot write: " + h5::lastErrorText());
  }
}

void DumpWriter::writeTokenIds(const std::vector<int32_t>& ids) {
  h5::ErrorSilencer silence;
  Impl& impl = *m_impl;
  impl.requireOpen("/tokens");
  if (impl.tokenIdsWritten) impl.misuse("/tokens", "written twice");
  if (static_cast<int64_t>(ids.size()) != impl.header.tokens) {
    impl.misuse("/tokens",
                std::to_string(ids.size()) + " ids for " + std::to_string(impl.header.tokens) + " tokens");
  }
  impl.writeVector("tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, ids.data(), ids.size());
  impl.tokenIdsWritten = true;
}

void DumpWriter::writeSequenceStarts(const std::vector<int64_t>& starts) {
  h5::ErrorSilencer silence;
  Impl& impl = *m_impl;
  const std::string where = "/sequence_starts";
  impl.requireOpen(where);
  if (impl.sequenceStartsWritten) impl.misuse(where, "written twice");
  if (starts.empty() || starts[0] != 0) impl.misuse(where, "must start at 0");
  for (size_t i = 1; i < starts.size(); ++i) {
    if (starts[i] <= starts[i - 1] || starts[i] >= impl.header.tokens) {
      impl.misuse(where, "offsets must ascend strictly and stay below the token count");
    }
  }
  impl.writeVector("sequence_starts", H5T_STD_I64LE, H5T_NATIVE_INT64, starts.data(), starts.size());
  impl.sequenceStartsWritten = true;
}

void DumpWriter::commit() {
  h5::ErrorSilencer silence;
  Impl& impl = *m_impl;
  impl.requireOpen("commit");
  if (impl.written.empty()) impl.misuse("commit", "no layer was written (a dump needs at least one)");
  if (!impl.header.queryPositions.empty() && !impl.queriesWritten)
    impl.misuse("commit", "queryPositions were given but no layer holds queries");
  const bool groupClosed = impl.layers.reset();
  if (H5Fflush(impl.file.get(), H5F_SCOPE_GLOBAL) < 0 || !impl.file.reset() || !groupClosed) {
    impl.fail("commit", "cannot finish the HDF5 file: " + h5::lastErrorText());
  }
  commitTemporaryFile(impl.tempPath, impl.path);  // fsync, then rename
  impl.committed = true;
}

}  // namespace kvq
