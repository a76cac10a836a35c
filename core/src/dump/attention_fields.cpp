// Optional attention fields of a dump: rope_layout, attention_scale,
// /rope_inv_freq, /query_positions (docs/dump-format.md, "Attention fields").
#include "dump/attention_fields.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "h5/checked_dataset.h"
#include "h5/hdf5_util.h"
#include "kvq/base/error.h"

namespace kvq::detail {
namespace {

constexpr hsize_t kMaxQueryPositions = hsize_t{1} << 28;  // 2 GiB of int64 offsets

// Opens the rank-1 dataset `name` below the root (a hard link), refusing other
// ranks and types whose class is not `typeClass`; `kindText` describes the
// expected type ("integers"). Returns its length. The storage is checked (as every
// dataset of a dump: no external or damaged chunks) unless the length exceeds
// `maxLength`, which the caller refuses without reading.
hsize_t openVector(hid_t root, const char* name, H5T_class_t typeClass, const char* kindText,
                   const std::string& path, hsize_t maxLength, h5::Dataset& ds, h5::StorageInfo& storage) {
  const std::string where = std::string("/") + name;
  const h5::Location loc{path, where};
  ds = h5::openDataset(root, name, loc);
  h5::Dataspace space(H5Dget_space(ds.get()));
  h5::Datatype type(H5Dget_type(ds.get()));
  const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank != 1 || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE) {
    throwBadInput(
        path, where,
        std::string("expected a rank-1 dataset of ") + kindText + ", found rank " + std::to_string(rank));
  }
  if (H5Tget_class(type.get()) != typeClass)
    throwBadInput(path, where,
                  std::string("expected ") + kindText + ", found " + h5::describeType(type.get()));
  hsize_t length = 0;
  H5Sget_simple_extent_dims(space.get(), &length, nullptr);
  if (length <= maxLength) storage = h5::checkStorage(ds.get(), loc, "entries");
  return length;
}

void readRopeInvFreq(hid_t root, const std::string& path, DumpInfo& info) {
  const std::string where = "/rope_inv_freq";
  h5::Dataset ds;
  h5::StorageInfo storage;
  const int64_t pairsLimit = info.headDim / 2;
  const hsize_t length = openVector(root, "rope_inv_freq", H5T_FLOAT, "floats", path,
                                    static_cast<hsize_t>(pairsLimit), ds, storage);
  const int ropeDim = info.ropeDim.value_or(info.headDim);
  if (ropeDim % 2 != 0) {
    throwBadInput(path, where,
                  "needs an even rotary dimension, but head_dim is " + std::to_string(info.headDim) +
                      " and rope_dim is absent");
  }
  if (length != static_cast<hsize_t>(ropeDim / 2)) {
    throwBadInput(path, where,
                  "has " + std::to_string(length) + " entries, expected rope_dim/2 = " +
                      std::to_string(ropeDim / 2) + (info.ropeDim ? "" : " (rope_dim absent: head_dim)"));
  }
  std::vector<double> freq(length);
  h5::readAllChecked(ds.get(), storage, H5T_NATIVE_DOUBLE, freq.data(), h5::Location{path, where}, "entries");
  for (size_t i = 0; i < freq.size(); ++i) {
    if (!std::isfinite(freq[i]) || freq[i] <= 0) {
      throwBadInput(path, where,
                    "entry " + std::to_string(i) + " is " + std::to_string(freq[i]) +
                        " (inverse frequencies must be finite and positive)");
    }
  }
  info.ropeInvFreq = std::move(freq);
}

}  // namespace

void readAttentionAttributes(hid_t root, const std::string& path, DumpInfo& info) {
  const h5::Location loc{path, "/"};
  if (const auto layout = h5::readStringAttribute(root, "rope_layout", loc)) {
    if (*layout != "half" && *layout != "interleaved")
      throwBadInput(path, "/",
                    "attribute 'rope_layout' is \"" + *layout + "\", expected \"half\" or \"interleaved\"");
    info.ropeLayout = *layout;
  }
  if (const auto scale = h5::readFloatAttribute(root, "attention_scale", loc)) {
    if (!std::isnormal(*scale) || *scale <= 0)
      throwBadInput(path, "/", "attribute 'attention_scale' must be a positive number");
    info.attentionScale = *scale;
  }
  if (h5::linkExists(root, "rope_inv_freq")) readRopeInvFreq(root, path, info);
}

void readQueryPositions(hid_t root, const std::string& path, DumpInfo& info) {
  const std::string where = "/query_positions";
  h5::Dataset ds;
  h5::StorageInfo storage;
  const hsize_t count =
      openVector(root, "query_positions", H5T_INTEGER, "integers", path,
                 std::min<hsize_t>(static_cast<hsize_t>(info.tokens), kMaxQueryPositions), ds, storage);
  if (info.queryTokens == 0) throwBadInput(path, where, "is present, but no layer stores queries");
  // Ascending tokens below T: never more than T entries (checked before allocating).
  if (count > static_cast<hsize_t>(info.tokens) || count > kMaxQueryPositions) {
    throwBadInput(path, where,
                  "holds " + std::to_string(count) + " entries, more than the " +
                      std::to_string(info.tokens) + " tokens" +
                      (count > kMaxQueryPositions ? " or the limit of 2^28" : ""));
  }
  if (count != static_cast<hsize_t>(info.queryTokens)) {
    throwBadInput(path, where,
                  "has " + std::to_string(count) + " entries, but the queries datasets have " +
                      std::to_string(info.queryTokens) + " rows");
  }
  std::vector<int64_t> positions(count);
  h5::readAllChecked(ds.get(), storage, H5T_NATIVE_INT64, positions.data(), h5::Location{path, where},
                     "entries");
  for (size_t i = 0; i < positions.size(); ++i) {
    if (positions[i] < 0 || positions[i] >= info.tokens) {
      throwBadInput(path, where,
                    "token " + std::to_string(positions[i]) + " at index " + std::to_string(i) +
                        " is out of range (the dump has " + std::to_string(info.tokens) + " tokens)");
    }
    if (i > 0 && positions[i] <= positions[i - 1]) {
      throwBadInput(path, where,
                    "not ascending at index " + std::to_string(i) + " (" + std::to_string(positions[i]) +
                        " after " + std::to_string(positions[i - 1]) + ")");
    }
  }
  info.queryPositions = std::move(positions);
}

}  // namespace kvq::detail
