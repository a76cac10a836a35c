// Open-time structure validation of a dump (docs/dump-format.md, "Refusals").
// Everything here runs before any buffer sized by the file is allocated.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dump/attention_fields.h"
#include "dump/dump_validate.h"
#include "h5/checked_dataset.h"
#include "h5/hdf5_util.h"
#include "kvq/base/error.h"
#include "kvq/base/step_trace.h"

namespace kvq::detail {
namespace {

constexpr long long kMaxCount = 1 << 20;          // layers, heads, head_dim
constexpr uint64_t kMaxSequenceStarts = 1 << 26;  // /sequence_starts entries

std::string shapeText(const hsize_t* dims, int rank) {
  std::string text = "[";
  for (int i = 0; i < rank; ++i) text += (i > 0 ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// A double for a message, denormals and NaN included ("4.94066e-324").
std::string numberText(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

// a * b, or false on uint64 overflow.
bool checkedMul(uint64_t a, uint64_t b, uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

class Validator {
 public:
  Validator(const std::string& path, ReaderImpl& impl) : m_path(path), m_impl(impl), m_info(impl.info) {}

  void run() {
    openFile();
    h5::Group root = h5::openGroup(m_impl.file.get(), "/", loc("/"));
    readRootAttributes(root.get());
    readAttentionAttributes(root.get(), m_path, m_info);
    readLayers(root.get());
    readTokens(root.get());
    readSequenceStarts(root.get());
    checkQueryPositions(root.get());
  }

 private:
  h5::Location loc(std::string hdf5Path) const { return h5::Location{m_path, std::move(hdf5Path)}; }
  [[noreturn]] void bad(const std::string& where, const std::string& problem) const {
    throwBadInput(m_path, where, problem);
  }

  void openFile() {
    m_info.path = m_path;
    const FileIdentity* expected =
        m_impl.options.expectedIdentity ? &*m_impl.options.expectedIdentity : nullptr;
    m_impl.pinned = std::make_unique<h5::PinnedFile>(m_path, expected);
    const std::string& name = m_impl.pinned->hdf5Name();
    traceStep("checking the HDF5 signature");
    const htri_t isHdf5 = H5Fis_hdf5(name.c_str());
    if (isHdf5 == 0) bad("", "not an HDF5 file (no HDF5 signature)");
    if (isHdf5 < 0) bad("", "cannot read the file (" + h5::lastErrorText() + ")");
    traceStep("opening the file (superblock and root group)");
    m_impl.file = h5::File(H5Fopen(name.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    if (!m_impl.file) {
      const std::string detail = h5::lastErrorText();
      if (detail.find("truncated") != std::string::npos) bad("", "truncated HDF5 file (" + detail + ")");
      bad("", "damaged HDF5 file, cannot open it (" + detail + ")");
    }
  }

  std::string requiredString(hid_t root, const char* name) {
    auto value = h5::readStringAttribute(root, name, loc("/"));
    if (!value) bad("/", std::string("missing required attribute '") + name + "'");
    return *value;
  }

  long long requiredInt(hid_t root, const char* name) {
    auto value = h5::readIntAttribute(root, name, loc("/"));
    if (!value) bad("/", std::string("missing required attribute '") + name + "'");
    return *value;
  }

  int checkCount(const char* name, long long value) const {
    if (value <= 0)
      bad("/",
          std::string("attribute '") + name + "' must be positive (found " + std::to_string(value) + ")");
    if (value > kMaxCount) {
      bad("/", std::string("attribute '") + name + "' is implausibly large (found " + std::to_string(value) +
                   ", limit " + std::to_string(kMaxCount) + ")");
    }
    return static_cast<int>(value);
  }

  void readRootAttributes(hid_t root) {
    const auto format = h5::readStringAttribute(root, "kvq_format", loc("/"));
    if (!format) bad("/", "missing required attribute 'kvq_format' (not a kvq dump)");
    if (*format != "kv-dump") bad("/", "attribute 'kvq_format' is \"" + *format + "\", expected \"kv-dump\"");
    const long long version = requiredInt(root, "kvq_format_version");
    if (version != 1) {
      bad("/", "unsupported kvq_format_version " + std::to_string(version) + " (this build reads version 1)");
    }
    m_info.formatVersion = 1;
    m_info.model = requiredString(root, "model");
    m_info.numLayers = checkCount("num_layers", requiredInt(root, "num_layers"));
    m_info.numKvHeads = checkCount("num_kv_heads", requiredInt(root, "num_kv_heads"));
    m_info.headDim = checkCount("head_dim", requiredInt(root, "head_dim"));
    m_info.keyRope = requiredString(root, "key_rope");
    if (m_info.keyRope != "pre" && m_info.keyRope != "post") {
      bad("/", "attribute 'key_rope' is \"" + m_info.keyRope + "\", expected \"pre\" or \"post\"");
    }
    if (const auto q = h5::readIntAttribute(root, "num_q_heads", loc("/")))
      m_info.numQHeads = checkCount("num_q_heads", *q);
    if (const auto theta = h5::readFloatAttribute(root, "rope_theta", loc("/"))) {
      // Denormals too: no rotary base is that small, and 1/theta overflows.
      if (!std::isnormal(*theta) || *theta <= 0) {
        bad("/",
            "attribute 'rope_theta' must be a positive normal number (found " + numberText(*theta) + ")");
      }
      m_info.ropeTheta = *theta;
    }
    if (const auto ropeDim = h5::readIntAttribute(root, "rope_dim", loc("/"))) {
      if (*ropeDim <= 0 || *ropeDim > m_info.headDim || *ropeDim % 2 != 0) {
        bad("/", "attribute 'rope_dim' must be even and in [2, head_dim] (found " + std::to_string(*ropeDim) +
                     ")");
      }
      m_info.ropeDim = static_cast<int>(*ropeDim);
    }
    if (const auto source = h5::readStringAttribute(root, "source", loc("/"))) m_info.source = *source;
  }

  std::vector<std::string> linkNames(hid_t group, const std::string& where) const {
    if (stepTracing()) traceStep("listing " + where);
    H5G_info_t groupInfo;
    if (H5Gget_info(group, &groupInfo) < 0) bad(where, "cannot list: " + h5::lastErrorText());
    if (groupInfo.nlinks == 0) bad(where, "holds no layers");
    if (groupInfo.nlinks > static_cast<hsize_t>(m_info.numLayers)) {
      bad(where, "holds " + std::to_string(groupInfo.nlinks) + " entries but num_layers is " +
                     std::to_string(m_info.numLayers));
    }
    return h5::linkNames(group, loc(where), static_cast<size_t>(m_info.numLayers));
  }

  void readLayers(hid_t root) {
    if (!h5::linkExists(root, "layers")) bad("/layers", "missing (a dump needs a /layers group)");
    h5::Group layers = h5::openGroup(root, "layers", loc("/layers"));
    // Names first, then layers in numeric order (HDF5 lists "10" before "2"), so
    // "the first dataset" of T/dtype messages is that of the lowest layer.
    std::vector<std::pair<int, std::string>> indexed;
    for (const std::string& name : linkNames(layers.get(), "/layers")) {
      int index = 0;
      if (!h5::parseDecimalIndex(name, index)) bad("/layers/" + name, "layer name is not a decimal index");
      if (index >= m_info.numLayers) {
        bad("/layers/" + name, "layer index " + std::to_string(index) + " is not below num_layers " +
                                   std::to_string(m_info.numLayers));
      }
      indexed.emplace_back(index, name);
    }
    std::sort(indexed.begin(), indexed.end());
    for (const auto& [index, name] : indexed) {
      const std::string where = "/layers/" + name;
      h5::Group layer = h5::openGroup(layers.get(), name, loc(where));
      LayerEntry entry;
      for (Kind kind : {Kind::Keys, Kind::Values, Kind::Queries}) {
        const std::string dsPath = where + "/" + kindName(kind);
        if (!h5::linkExists(layer.get(), kindName(kind))) {
          if (kind != Kind::Queries) bad(dsPath, "missing (every layer needs keys and values)");
          continue;
        }
        entry[static_cast<size_t>(kind)] = openLayerDataset(layer.get(), kind, dsPath);
      }
      m_info.layers.push_back(index);
      m_impl.layers.emplace(index, std::move(entry));
    }
    m_info.hasQueries = true;
    for (const auto& [index, entry] : m_impl.layers) {
      if (!entry[static_cast<size_t>(Kind::Queries)]) m_info.hasQueries = false;
    }
  }

  // The storage type of a [T, H, D] dataset and the memory type to read it with.
  DType classify(hid_t dataset, hid_t fileType, const std::string& where, h5::Datatype& memType) const {
    const H5T_class_t cls = H5Tget_class(fileType);
    const size_t size = H5Tget_size(fileType);
    const std::string found = h5::describeType(fileType);
    if (cls == H5T_FLOAT && size == 4 && h5::isIeeeFloat(fileType)) {
      memType = h5::Datatype(H5Tcopy(H5T_NATIVE_FLOAT));
      return DType::Float32;
    }
    DType dtype;
    if (cls == H5T_FLOAT && h5::isIeeeHalf(fileType)) {
      dtype = DType::Float16;
    } else if (cls == H5T_INTEGER && size == 2) {
      const auto tag = h5::readStringAttribute(dataset, "dtype", loc(where));
      if (!tag || *tag != "bfloat16") {
        bad(where, "unsupported dtype " + found +
                       " (16-bit integers are accepted only with the attribute dtype=\"bfloat16\")");
      }
      dtype = DType::BFloat16;
    } else {
      bad(where, "unsupported dtype " + found + " (expected float16, bfloat16 or float32)");
    }
    // The file's own 16-bit type in native byte order: HDF5 copies raw bits (no
    // numeric conversion), which the reader widens to float32 itself.
    memType = h5::Datatype(H5Tcopy(fileType));
    if (!memType || H5Tset_order(memType.get(), H5Tget_order(H5T_NATIVE_USHORT)) < 0) {
      bad(where, "cannot set up the memory type: " + h5::lastErrorText());
    }
    return dtype;
  }

  DatasetEntry openLayerDataset(hid_t layer, Kind kind, const std::string& where) {
    DatasetEntry entry;
    entry.path = where;
    entry.dataset = h5::openDataset(layer, kindName(kind), loc(where));
    const hid_t ds = entry.dataset.get();
    h5::Dataspace space(H5Dget_space(ds));
    if (!space || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE) {
      bad(where, "has a scalar or empty dataspace, expected rank 3 ([tokens, heads, head_dim])");
    }
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (rank != 3) bad(where, "rank " + std::to_string(rank) + ", expected 3 ([tokens, heads, head_dim])");
    hsize_t dims[3] = {0, 0, 0};
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);

    if (stepTracing()) traceStep("reading the datatype of " + where);
    h5::Datatype fileType(H5Dget_type(ds));
    const DType dtype = classify(ds, fileType.get(), where, entry.memType);
    if (m_firstPath.empty()) {
      m_info.dtype = dtype;
    } else if (dtype != m_info.dtype) {
      bad(where, std::string("dtype ") + dtypeName(dtype) + " differs from " + dtypeName(m_info.dtype) +
                     " of " + m_firstPath + " (all datasets must share one dtype)");
    }

    const bool queries = kind == Kind::Queries;
    if (queries && m_info.numQHeads == 0)
      bad(where, "queries are stored but root attribute 'num_q_heads' is missing");
    const int expectedHeads = queries ? m_info.numQHeads : m_info.numKvHeads;
    const char* headsAttr = queries ? "num_q_heads" : "num_kv_heads";
    if (dims[1] != static_cast<hsize_t>(expectedHeads)) {
      bad(where, "shape " + shapeText(dims, 3) + " has " + std::to_string(dims[1]) + " heads, but " +
                     headsAttr + " is " + std::to_string(expectedHeads));
    }
    if (dims[2] != static_cast<hsize_t>(m_info.headDim)) {
      bad(where, "shape " + shapeText(dims, 3) + " has head dim " + std::to_string(dims[2]) +
                     ", but head_dim is " + std::to_string(m_info.headDim));
    }
    if (dims[0] == 0) bad(where, "zero tokens");
    uint64_t bytes = 0;
    if (!checkedMul(dims[0], dims[1], bytes) || !checkedMul(bytes, dims[2], bytes) ||
        !checkedMul(bytes, 4, bytes)) {
      bad(where, "shape " + shapeText(dims, 3) + " overflows a 64-bit byte size");
    }
    if (bytes > kMaxDatasetBytes) {
      bad(where, "shape " + shapeText(dims, 3) + " is " + std::to_string(bytes) +
                     " bytes as float32, over the limit of " + std::to_string(kMaxDatasetBytes) + " bytes");
    }
    if (queries) {
      checkQueryRows(where, static_cast<int64_t>(dims[0]));
    } else if (m_firstPath.empty()) {
      m_info.tokens = static_cast<int64_t>(dims[0]);
      m_firstPath = where;
    } else if (static_cast<int64_t>(dims[0]) != m_info.tokens) {
      bad(where, std::to_string(dims[0]) + " tokens, but " + m_firstPath + " has " +
                     std::to_string(m_info.tokens) + " (T must be the same for every layer and kind)");
    }
    if (stepTracing()) traceStep("reading the storage layout and chunk index of " + where);
    entry.storage = h5::checkStorage(ds, loc(where), "tokens");
    entry.kind = kind;
    entry.heads = expectedHeads;
    entry.rows = static_cast<int64_t>(dims[0]);
    return entry;
  }

  // Every queries dataset has the same rows: T, or one per /query_positions entry
  // (checked once the whole file is read, by checkQueryPositions). Keys of the same
  // layer come first, so T is known here.
  void checkQueryRows(const std::string& where, int64_t rows) {
    if (m_firstQueryPath.empty()) {
      m_info.queryTokens = rows;
      m_firstQueryPath = where;
    } else if (rows != m_info.queryTokens) {
      bad(where, std::to_string(rows) + " rows, but " + m_firstQueryPath + " has " +
                     std::to_string(m_info.queryTokens) + " (every layer stores the same query tokens)");
    }
  }

  void checkQueryPositions(hid_t root) {
    const bool stored = h5::linkExists(root, "query_positions");
    if (stored) {
      readQueryPositions(root, m_path, m_info);
    } else if (!m_firstQueryPath.empty() && m_info.queryTokens != m_info.tokens) {
      bad(m_firstQueryPath, std::to_string(m_info.queryTokens) + " tokens, but " + m_firstPath + " has " +
                                std::to_string(m_info.tokens) +
                                " (T must be the same for every layer and kind, unless /query_positions "
                                "names the tokens of the query rows)");
    }
  }

  // A rank-1 integer dataset, its storage checked; returns its length.
  hsize_t openVector(hid_t root, const char* name, const std::string& where, h5::Dataset& ds,
                     h5::StorageInfo& storage) const {
    ds = h5::openDataset(root, name, loc(where));
    h5::Dataspace space(H5Dget_space(ds.get()));
    h5::Datatype type(H5Dget_type(ds.get()));
    const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (rank != 1 || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE) {
      bad(where, "expected a rank-1 integer dataset, found rank " + std::to_string(rank));
    }
    if (H5Tget_class(type.get()) != H5T_INTEGER) {
      bad(where, "expected integers, found " + h5::describeType(type.get()));
    }
    hsize_t length = 0;
    H5Sget_simple_extent_dims(space.get(), &length, nullptr);
    if (length > static_cast<hsize_t>(m_info.tokens)) return length;  // the caller refuses it, unread
    storage = h5::checkStorage(ds.get(), loc(where), "entries");
    return length;
  }

  void readTokens(hid_t root) {
    if (!h5::linkExists(root, "tokens")) return;
    const hsize_t length = openVector(root, "tokens", "/tokens", m_impl.tokens, m_impl.tokensStorage);
    if (length != static_cast<hsize_t>(m_info.tokens)) {
      bad("/tokens", "has " + std::to_string(length) + " entries, but the dump has " +
                         std::to_string(m_info.tokens) + " tokens");
    }
    m_info.hasTokenIds = true;
  }

  void readSequenceStarts(hid_t root) {
    if (!h5::linkExists(root, "sequence_starts")) return;
    const std::string where = "/sequence_starts";
    h5::Dataset ds;
    h5::StorageInfo storage;
    const hsize_t count = openVector(root, "sequence_starts", where, ds, storage);
    if (count == 0) bad(where, "is empty (it must start with 0)");
    if (count > static_cast<hsize_t>(m_info.tokens) || count > kMaxSequenceStarts) {
      bad(where, "holds " + std::to_string(count) + " offsets, more than the " +
                     std::to_string(m_info.tokens) + " tokens");
    }
    std::vector<int64_t> starts(count);
    traceStep("reading /sequence_starts");
    h5::readAllChecked(ds.get(), storage, H5T_NATIVE_INT64, starts.data(), loc(where), "entries");
    if (starts[0] != 0) bad(where, "must start at 0 (found " + std::to_string(starts[0]) + ")");
    for (size_t i = 1; i < starts.size(); ++i) {
      if (starts[i] <= starts[i - 1]) {
        bad(where, "not ascending at index " + std::to_string(i) + " (" + std::to_string(starts[i]) +
                       " after " + std::to_string(starts[i - 1]) + ")");
      }
      if (starts[i] >= m_info.tokens) {
        bad(where, "offset " + std::to_string(starts[i]) + " at index " + std::to_string(i) +
                       " is out of range (the dump has " + std::to_string(m_info.tokens) + " tokens)");
      }
    }
    m_info.sequenceStarts = std::move(starts);
  }

  const std::string& m_path;
  ReaderImpl& m_impl;
  DumpInfo& m_info;
  std::string m_firstPath;       // first keys/values dataset seen (reference for T and dtype)
  std::string m_firstQueryPath;  // first queries dataset seen (reference for the query rows)
};

}  // namespace

void validateDump(const std::string& path, ReaderImpl& impl) {
  Validator(path, impl).run();
}

}  // namespace kvq::detail
