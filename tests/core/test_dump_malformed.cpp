// A malformed-file corpus built with the raw HDF5 C API: one file per refusal,
// each asserting the exact message (file name, HDF5 path, problem). Also checks
// that refusals print nothing (HDF5's error stack is silenced) and leave other
// open readers intact, and that foreign layouts (big-endian half, fixed-length
// string attributes, narrow integer attributes) are accepted.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/half.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "test_util.h"

namespace kvq {
namespace {

constexpr hsize_t kT = 16, kH = 2, kD = 8;

// --- a tiny raw builder: the whole file is described as data, then written ---

enum class Storage { F32, F16, F16BE, F64, I32, U16, U16Bf16, String, Complex };

struct FixedString {
  std::string text;
};
using AttrValue = std::variant<std::string, FixedString, long long, int, unsigned char, double>;

struct RawDataset {
  std::vector<hsize_t> dims{kT, kH, kD};
  Storage storage = Storage::F32;
  bool writeData = true;                          // false: chunked, unlimited, nothing written
  std::map<std::pair<size_t, int>, float> pokes;  // (flat index, unused) -> value
};

struct RawDump {
  std::map<std::string, AttrValue> attrs = {
      {"kvq_format", FixedString{"kv-dump"}},  // fixed-length, as some writers do
      {"kvq_format_version", 1},               // int32
      {"model", std::string("raw test model")},
      {"num_layers", static_cast<unsigned char>(4)},  // uint8: any integer type
      {"num_kv_heads", 2LL},
      {"head_dim", 8LL},
      {"key_rope", std::string("pre")},
  };
  bool layersGroup = true;
  std::map<std::string, RawDataset> datasets = {
      {"/layers/0/keys", {}}, {"/layers/0/values", {}}, {"/layers/1/keys", {}}, {"/layers/1/values", {}}};
  std::vector<std::string> extraGroups;
  std::function<void(hid_t)> extra;  // anything else, on the open file
};

hid_t fileTypeFor(Storage s) {
  switch (s) {
    case Storage::F32:
      return H5Tcopy(H5T_IEEE_F32LE);
    case Storage::F64:
      return H5Tcopy(H5T_IEEE_F64LE);
    case Storage::I32:
      return H5Tcopy(H5T_STD_I32LE);
    case Storage::U16:
    case Storage::U16Bf16:
      return H5Tcopy(H5T_STD_U16LE);
    case Storage::F16:
    case Storage::F16BE: {
      const hid_t t = H5Tcopy(s == Storage::F16 ? H5T_IEEE_F32LE : H5T_IEEE_F32BE);
      H5Tset_fields(t, 15, 10, 5, 0, 10);
      H5Tset_size(t, 2);
      H5Tset_ebias(t, 15);
      return t;
    }
    case Storage::String: {
      const hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, 4);
      return t;
    }
    case Storage::Complex: {
      const hid_t t = H5Tcreate(H5T_COMPOUND, 8);
      H5Tinsert(t, "r", 0, H5T_IEEE_F32LE);
      H5Tinsert(t, "i", 4, H5T_IEEE_F32LE);
      return t;
    }
  }
  return -1;
}

void writeAttr(hid_t obj, const std::string& name, const AttrValue& value) {
  const hid_t space = H5Screate(H5S_SCALAR);
  hid_t type = -1;
  hid_t memType = -1;
  const void* data = nullptr;
  const char* text = nullptr;
  if (const auto* s = std::get_if<std::string>(&value)) {
    type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    H5Tset_cset(type, H5T_CSET_UTF8);
    memType = type;
    text = s->c_str();
    data = &text;
  } else if (const auto* f = std::get_if<FixedString>(&value)) {
    type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, f->text.size());
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    memType = type;
    data = f->text.data();
  } else if (const auto* ll = std::get_if<long long>(&value)) {
    type = H5Tcopy(H5T_STD_I64LE);
    memType = H5T_NATIVE_LLONG;
    data = ll;
  } else if (const auto* i = std::get_if<int>(&value)) {
    type = H5Tcopy(H5T_STD_I32BE);  // big endian on purpose
    memType = H5T_NATIVE_INT;
    data = i;
  } else if (const auto* u = std::get_if<unsigned char>(&value)) {
    type = H5Tcopy(H5T_STD_U8LE);
    memType = H5T_NATIVE_UCHAR;
    data = u;
  } else if (const auto* d = std::get_if<double>(&value)) {
    type = H5Tcopy(H5T_IEEE_F64LE);
    memType = H5T_NATIVE_DOUBLE;
    data = d;
  }
  const hid_t attr = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(attr, 0);
  ASSERT_GE(H5Awrite(attr, memType, data), 0);
  H5Aclose(attr);
  H5Tclose(type);
  H5Sclose(space);
}

// Value at flat index i of a well-formed dataset: small, finite, varied.
float cellValue(size_t i) {
  return static_cast<float>(std::sin(0.1 * static_cast<double>(i)));
}

void writeDataset(hid_t file, const std::string& path, const RawDataset& d) {
  const hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  const int rank = static_cast<int>(d.dims.size());
  const hid_t type = fileTypeFor(d.storage);
  const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  hid_t space;
  if (d.writeData) {
    space = H5Screate_simple(rank, d.dims.data(), nullptr);
  } else {
    // Huge declared shapes are only possible with chunked, extendible storage.
    const std::vector<hsize_t> maxDims(d.dims.size(), H5S_UNLIMITED);
    const std::vector<hsize_t> chunk(d.dims.size(), 1);
    space = H5Screate_simple(rank, d.dims.data(), maxDims.data());
    H5Pset_chunk(dcpl, rank, chunk.data());
  }
  const hid_t ds = H5Dcreate2(file, path.c_str(), type, space, lcpl, dcpl, H5P_DEFAULT);
  ASSERT_GE(ds, 0) << path;
  if (d.storage == Storage::U16Bf16) writeAttr(ds, "dtype", std::string("bfloat16"));
  if (d.writeData) {
    size_t n = 1;
    for (hsize_t x : d.dims) n *= x;
    std::vector<float> values(n);
    for (size_t i = 0; i < n; ++i) values[i] = cellValue(i);
    for (const auto& [key, v] : d.pokes) values[key.first] = v;
    std::vector<uint16_t> narrow(n);
    std::vector<double> wide(n);
    std::vector<int32_t> ints(n);
    std::vector<char> chars(n * 4, 'x');
    hid_t memType = H5T_NATIVE_FLOAT;
    const void* buffer = values.data();
    switch (d.storage) {
      case Storage::F16:
      case Storage::F16BE:
        for (size_t i = 0; i < n; ++i) narrow[i] = floatToHalf(values[i]);
        memType = fileTypeFor(Storage::F16);  // little-endian memory; HDF5 swaps for BE files
        buffer = narrow.data();
        break;
      case Storage::U16:
      case Storage::U16Bf16:
        for (size_t i = 0; i < n; ++i) narrow[i] = floatToBfloat16(values[i]);
        memType = H5T_NATIVE_UINT16;
        buffer = narrow.data();
        break;
      case Storage::F64:
        for (size_t i = 0; i < n; ++i) wide[i] = values[i];
        memType = H5T_NATIVE_DOUBLE;
        buffer = wide.data();
        break;
      case Storage::I32:
        memType = H5T_NATIVE_INT32;
        buffer = ints.data();
        break;
      case Storage::String:
        memType = type;
        buffer = chars.data();
        break;
      case Storage::Complex:
        memType = type;
        wide.resize(n);  // 8 bytes per element
        buffer = wide.data();
        break;
      case Storage::F32:
        break;
    }
    ASSERT_GE(H5Dwrite(ds, memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer), 0) << path;
  }
  H5Dclose(ds);
  H5Sclose(space);
  H5Pclose(dcpl);
  H5Tclose(type);
  H5Pclose(lcpl);
}

void writeVector(hid_t file, const char* name, hid_t fileType, hid_t memType, const void* data,
                 std::vector<hsize_t> dims) {
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t ds = H5Dcreate2(file, name, fileType, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  ASSERT_GE(H5Dwrite(ds, memType, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), 0);
  H5Dclose(ds);
  H5Sclose(space);
}

void buildRaw(const std::string& path, const RawDump& spec) {
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  for (const auto& [name, value] : spec.attrs) writeAttr(file, name, value);
  if (spec.layersGroup) H5Gclose(H5Gcreate2(file, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (const std::string& g : spec.extraGroups)
    H5Gclose(H5Gcreate2(file, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  for (const auto& [dsPath, d] : spec.datasets) writeDataset(file, dsPath, d);
  if (spec.extra) spec.extra(file);
  ASSERT_GE(H5Fclose(file), 0);
}

// --- the corpus ---

struct MalformedCase {
  const char* name;
  std::function<void(RawDump&)> mutate;  // applied to the valid RawDump
  std::string expected;                  // after "<file>: "
};

std::vector<MalformedCase> corpus() {
  auto dropAttr = [](const char* attr) { return [attr](RawDump& d) { d.attrs.erase(attr); }; };
  auto startsAt = [](std::vector<long long> starts) {
    return [starts](RawDump& d) {
      d.extra = [starts](hid_t f) {
        writeVector(f, "sequence_starts", H5T_STD_I64LE, H5T_NATIVE_LLONG, starts.data(), {starts.size()});
      };
    };
  };
  auto invFreq = [](std::vector<double> freq) {
    return [freq](RawDump& d) {
      d.extra = [freq](hid_t f) {
        writeVector(f, "rope_inv_freq", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, freq.data(), {freq.size()});
      };
    };
  };
  // /query_positions, with `rows` query rows stored in both layers (0: no queries).
  auto queryPositions = [](std::vector<long long> positions, hsize_t rows) {
    return [positions, rows](RawDump& d) {
      if (rows > 0) {
        d.attrs["num_q_heads"] = 2LL;
        d.datasets["/layers/0/queries"].dims = {rows, kH, kD};
        d.datasets["/layers/1/queries"].dims = {rows, kH, kD};
      }
      d.extra = [positions](hid_t f) {
        writeVector(f, "query_positions", H5T_STD_I64LE, H5T_NATIVE_LLONG, positions.data(),
                    {positions.size()});
      };
    };
  };
  return {
      {"MissingFormat", dropAttr("kvq_format"),
       "/: missing required attribute 'kvq_format' (not a kvq dump)"},
      {"WrongFormat", [](RawDump& d) { d.attrs["kvq_format"] = std::string("kv-dumps"); },
       "/: attribute 'kvq_format' is \"kv-dumps\", expected \"kv-dump\""},
      {"FormatNotString", [](RawDump& d) { d.attrs["kvq_format"] = 7LL; },
       "/: attribute 'kvq_format' must be a string (found int64)"},
      {"MissingVersion", dropAttr("kvq_format_version"),
       "/: missing required attribute 'kvq_format_version'"},
      {"WrongVersion", [](RawDump& d) { d.attrs["kvq_format_version"] = 2; },
       "/: unsupported kvq_format_version 2 (this build reads version 1)"},
      {"MissingModel", dropAttr("model"), "/: missing required attribute 'model'"},
      {"MissingNumLayers", dropAttr("num_layers"), "/: missing required attribute 'num_layers'"},
      {"MissingNumKvHeads", dropAttr("num_kv_heads"), "/: missing required attribute 'num_kv_heads'"},
      {"MissingHeadDim", dropAttr("head_dim"), "/: missing required attribute 'head_dim'"},
      {"MissingKeyRope", dropAttr("key_rope"), "/: missing required attribute 'key_rope'"},
      {"ZeroKvHeads", [](RawDump& d) { d.attrs["num_kv_heads"] = 0LL; },
       "/: attribute 'num_kv_heads' must be positive (found 0)"},
      {"NegativeHeadDim", [](RawDump& d) { d.attrs["head_dim"] = -8LL; },
       "/: attribute 'head_dim' must be positive (found -8)"},
      {"NumLayersAsFloat", [](RawDump& d) { d.attrs["num_layers"] = 4.0; },
       "/: attribute 'num_layers' must be an integer (found float64)"},
      {"BadKeyRope", [](RawDump& d) { d.attrs["key_rope"] = std::string("both"); },
       "/: attribute 'key_rope' is \"both\", expected \"pre\" or \"post\""},
      {"NoLayersGroup",
       [](RawDump& d) {
         d.layersGroup = false;
         d.datasets.clear();
       },
       "/layers: missing (a dump needs a /layers group)"},
      {"EmptyLayersGroup", [](RawDump& d) { d.datasets.clear(); }, "/layers: holds no layers"},
      {"LayerNameNotDecimal", [](RawDump& d) { d.datasets["/layers/L2/keys"] = {}; },
       "/layers/L2: layer name is not a decimal index"},
      {"LayerNameLeadingZero", [](RawDump& d) { d.datasets["/layers/02/keys"] = {}; },
       "/layers/02: layer name is not a decimal index"},
      {"LayerIndexTooLarge",
       [](RawDump& d) {
         d.datasets["/layers/4/keys"] = {};
         d.datasets["/layers/4/values"] = {};
       },
       "/layers/4: layer index 4 is not below num_layers 4"},
      {"SoftLinkDataset",
       [](RawDump& d) {
         d.datasets.erase("/layers/1/values");
         d.extra = [](hid_t f) {
           H5Lcreate_soft("/layers/1/keys", f, "/layers/1/values", H5P_DEFAULT, H5P_DEFAULT);
         };
       },
       "/layers/1/values: is a soft or external link (the file's objects must be stored in the file itself)"},
      {"ExternalLinkLayer",
       [](RawDump& d) {
         d.extra = [](hid_t f) {
           H5Lcreate_external("elsewhere.h5", "/layers/0", f, "/layers/2", H5P_DEFAULT, H5P_DEFAULT);
         };
       },
       "/layers/2: is a soft or external link"},
      {"LayerWithoutValues", [](RawDump& d) { d.datasets.erase("/layers/1/values"); },
       "/layers/1/values: missing (every layer needs keys and values)"},
      {"LayerWithoutKeys", [](RawDump& d) { d.datasets.erase("/layers/0/keys"); },
       "/layers/0/keys: missing (every layer needs keys and values)"},
      {"Rank2",
       [](RawDump& d) {
         d.datasets["/layers/0/keys"].dims = {kT, kH * kD};
       },
       "/layers/0/keys: rank 2, expected 3 ([tokens, heads, head_dim])"},
      {"HeadsMismatch",
       [](RawDump& d) {
         d.datasets["/layers/1/values"].dims = {kT, 3, kD};
       },
       "/layers/1/values: shape [16, 3, 8] has 3 heads, but num_kv_heads is 2"},
      {"HeadDimMismatch",
       [](RawDump& d) {
         d.datasets["/layers/0/keys"].dims = {kT, kH, 4};
       },
       "/layers/0/keys: shape [16, 2, 4] has head dim 4, but head_dim is 8"},
      {"QueriesWithoutNumQHeads", [](RawDump& d) { d.datasets["/layers/0/queries"] = {}; },
       "/layers/0/queries: queries are stored but root attribute 'num_q_heads' is missing"},
      {"QueryHeadsMismatch",
       [](RawDump& d) {
         d.attrs["num_q_heads"] = 4LL;
         d.datasets["/layers/0/queries"] = {};
       },
       "/layers/0/queries: shape [16, 2, 8] has 2 heads, but num_q_heads is 4"},
      // Attention fields (rope_layout, attention_scale, /rope_inv_freq, /query_positions).
      {"BadRopeLayout", [](RawDump& d) { d.attrs["rope_layout"] = std::string("neox"); },
       "/: attribute 'rope_layout' is \"neox\", expected \"half\" or \"interleaved\""},
      {"AttentionScaleNotPositive", [](RawDump& d) { d.attrs["attention_scale"] = -0.5; },
       "/: attribute 'attention_scale' must be a positive number"},
      {"RopeInvFreqWrongLength", invFreq({1.0, 0.1, 0.01}),
       "/rope_inv_freq: has 3 entries, expected rope_dim/2 = 4 (rope_dim absent: head_dim)"},
      {"RopeInvFreqNegative", invFreq({1.0, 0.1, -0.01, 0.001}),
       "/rope_inv_freq: entry 2 is -0.010000 (inverse frequencies must be finite and positive)"},
      {"RopeInvFreqIntegers",
       [](RawDump& d) {
         d.extra = [](hid_t f) {
           std::vector<int32_t> v(4, 1);
           writeVector(f, "rope_inv_freq", H5T_STD_I32LE, H5T_NATIVE_INT32, v.data(), {4});
         };
       },
       "/rope_inv_freq: expected floats, found int32"},
      {"QueryTokensDiffer",
       [](RawDump& d) {
         d.attrs["num_q_heads"] = 2LL;
         d.datasets["/layers/0/queries"].dims = {12, kH, kD};
       },
       "/layers/0/queries: 12 tokens, but /layers/0/keys has 16 (T must be the same for every layer and "
       "kind, "
       "unless /query_positions names the tokens of the query rows)"},
      {"QueryRowsDifferBetweenLayers",
       [](RawDump& d) {
         d.attrs["num_q_heads"] = 2LL;
         d.datasets["/layers/0/queries"].dims = {4, kH, kD};
         d.datasets["/layers/1/queries"].dims = {5, kH, kD};
       },
       "/layers/1/queries: 5 rows, but /layers/0/queries has 4 (every layer stores the same query tokens)"},
      {"QueryPositionsWithoutQueries", queryPositions({12, 13}, 0),
       "/query_positions: is present, but no layer stores queries"},
      {"QueryPositionsWrongCount", queryPositions({12, 13, 14}, 2),
       "/query_positions: has 3 entries, but the queries datasets have 2 rows"},
      {"QueryPositionsNotAscending", queryPositions({12, 12}, 2),
       "/query_positions: not ascending at index 1 (12 after 12)"},
      {"QueryPositionsOutOfRange", queryPositions({3, 16}, 2),
       "/query_positions: token 16 at index 1 is out of range (the dump has 16 tokens)"},
      {"NaNInSelectedQueries",
       [queryPositions](RawDump& d) {
         queryPositions({4, 9, 15}, 3)(d);
         d.datasets["/layers/1/queries"].pokes[{(1 * kH + 1) * kD + 2, 0}] =
             std::numeric_limits<float>::quiet_NaN();
       },
       "/layers/1/queries: NaN at row 1 (token 9), head 1, channel 2"},
      {"TokensDifferKeysValues",
       [](RawDump& d) {
         d.datasets["/layers/0/values"].dims = {15, kH, kD};
       },
       "/layers/0/values: 15 tokens, but /layers/0/keys has 16 (T must be the same for every layer and "
       "kind)"},
      {"TokensDifferBetweenLayers",
       [](RawDump& d) {
         d.datasets["/layers/1/keys"].dims = {12, kH, kD};
         d.datasets["/layers/1/values"].dims = {12, kH, kD};
       },
       "/layers/1/keys: 12 tokens, but /layers/0/keys has 16"},
      {"TokensDifferNumericLayerOrder",  // HDF5 lists "10" before "2"; the reference is layer 2
       [](RawDump& d) {
         d.attrs["num_layers"] = static_cast<unsigned char>(11);
         d.datasets.clear();
         d.datasets["/layers/2/keys"] = {};
         d.datasets["/layers/2/values"] = {};
         d.datasets["/layers/10/keys"].dims = {12, kH, kD};
         d.datasets["/layers/10/values"].dims = {12, kH, kD};
       },
       "/layers/10/keys: 12 tokens, but /layers/2/keys has 16"},
      {"ZeroTokens",
       [](RawDump& d) {
         d.datasets["/layers/0/keys"].dims = {0, kH, kD};
       },
       "/layers/0/keys: zero tokens"},
      {"Int32Dataset", [](RawDump& d) { d.datasets["/layers/0/keys"].storage = Storage::I32; },
       "/layers/0/keys: unsupported dtype int32 (expected float16, bfloat16 or float32)"},
      {"Uint16WithoutTag", [](RawDump& d) { d.datasets["/layers/0/keys"].storage = Storage::U16; },
       "/layers/0/keys: unsupported dtype uint16 (16-bit integers are accepted only with the attribute "
       "dtype=\"bfloat16\")"},
      {"StringDataset", [](RawDump& d) { d.datasets["/layers/0/values"].storage = Storage::String; },
       "/layers/0/values: unsupported dtype string"},
      {"Float64Dataset", [](RawDump& d) { d.datasets["/layers/0/keys"].storage = Storage::F64; },
       "/layers/0/keys: unsupported dtype float64"},
      {"ComplexDataset", [](RawDump& d) { d.datasets["/layers/0/keys"].storage = Storage::Complex; },
       "/layers/0/keys: unsupported dtype compound (e.g. complex)"},
      {"MixedDtypes",
       [](RawDump& d) {
         d.datasets["/layers/1/keys"].storage = Storage::F16;
         d.datasets["/layers/1/values"].storage = Storage::F16;
       },
       "/layers/1/keys: dtype float16 differs from float32 of /layers/0/keys"},
      {"OverflowingShape",
       [](RawDump& d) {
         d.datasets["/layers/0/keys"].dims = {hsize_t{1} << 62, kH, kD};
         d.datasets["/layers/0/keys"].writeData = false;
       },
       "/layers/0/keys: shape [4611686018427387904, 2, 8] overflows a 64-bit byte size"},
      {"ShapeOverLimit",
       [](RawDump& d) {
         d.datasets["/layers/0/keys"].dims = {hsize_t{1} << 40, kH, kD};
         d.datasets["/layers/0/keys"].writeData = false;
       },
       "/layers/0/keys: shape [1099511627776, 2, 8] is 70368744177664 bytes as float32, over the limit of "
       "1099511627776 bytes"},
      {"NeverWritten", [](RawDump& d) { d.datasets["/layers/1/values"].writeData = false; },
       "/layers/1/values: declared [16, 2, 8] but its data was never (fully) written"},
      {"NaNInKeys",
       [](RawDump& d) {
         // token 9, head 1, channel 5 -> flat (9 * 2 + 1) * 8 + 5
         d.datasets["/layers/1/keys"].pokes[{(9 * kH + 1) * kD + 5, 0}] =
             std::numeric_limits<float>::quiet_NaN();
         d.datasets["/layers/1/keys"].pokes[{(12 * kH + 0) * kD + 1, 0}] =
             std::numeric_limits<float>::infinity();
       },
       "/layers/1/keys: NaN at token 9, head 1, channel 5"},
      {"NegInfInValues",
       [](RawDump& d) {
         d.datasets["/layers/0/values"].pokes[{(3 * kH + 0) * kD + 7, 0}] =
             -std::numeric_limits<float>::infinity();
       },
       "/layers/0/values: -Inf at token 3, head 0, channel 7"},
      {"InfInHalfData",
       [](RawDump& d) {
         for (auto& [p, ds] : d.datasets) ds.storage = Storage::F16;
         d.datasets["/layers/1/values"].pokes[{(15 * kH + 1) * kD + 0, 0}] = 1e6f;  // overflows half: inf
       },
       "/layers/1/values: Inf at token 15, head 1, channel 0"},
      {"TokensRank2",
       [](RawDump& d) {
         d.extra = [](hid_t f) {
           std::vector<int32_t> ids(kT * 2, 1);
           writeVector(f, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, ids.data(), {kT, 2});
         };
       },
       "/tokens: expected a rank-1 integer dataset, found rank 2"},
      {"TokensFloat",
       [](RawDump& d) {
         d.extra = [](hid_t f) {
           std::vector<float> ids(kT, 1.0f);
           writeVector(f, "tokens", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ids.data(), {kT});
         };
       },
       "/tokens: expected integers, found float32"},
      {"TokensWrongLength",
       [](RawDump& d) {
         d.extra = [](hid_t f) {
           std::vector<int32_t> ids(kT - 1, 1);
           writeVector(f, "tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, ids.data(), {kT - 1});
         };
       },
       "/tokens: has 15 entries, but the dump has 16 tokens"},
      {"SequenceStartsNotAtZero", startsAt({2, 8}), "/sequence_starts: must start at 0 (found 2)"},
      {"SequenceStartsNotAscending", startsAt({0, 8, 5}),
       "/sequence_starts: not ascending at index 2 (5 after 8)"},
      {"SequenceStartsOutOfRange", startsAt({0, 16}),
       "/sequence_starts: offset 16 at index 1 is out of range (the dump has 16 tokens)"},
  };
}

class MalformedDump : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedDump, IsRefusedWithExactMessage) {
  const MalformedCase& c = GetParam();
  RawDump spec;
  c.mutate(spec);
  const std::string path = (test::freshTempDir() / (std::string(c.name) + ".h5")).string();
  buildRaw(path, spec);
  ASSERT_FALSE(HasFatalFailure());
  ::testing::internal::CaptureStderr();
  try {
    DumpReader::open(path);
    ::testing::internal::GetCapturedStderr();
    FAIL() << "accepted; expected: " << c.expected;
  } catch (const Error& e) {
    const std::string printed = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), path);
    EXPECT_NE(std::string(e.what()).find(path + ": " + c.expected), std::string::npos)
        << "message: " << e.what() << "\nexpected: " << c.expected;
    EXPECT_EQ(printed, "") << "HDF5 printed to stderr";
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, MalformedDump, ::testing::ValuesIn(corpus()),
                         [](const ::testing::TestParamInfo<MalformedCase>& p) {
                           return std::string(p.param.name);
                         });

template <typename F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  }
  return "(accepted)";
}

TEST(MalformedFile, NotHdf5) {
  const std::string path = (test::freshTempDir() / "notes.txt").string();
  std::ofstream(path) << "this is a text file, not HDF5\n";
  EXPECT_EQ(refusal([&] { DumpReader::open(path); }), path + ": not an HDF5 file (no HDF5 signature)");
}

TEST(MalformedFile, MissingFileAndDirectory) {
  const std::filesystem::path dir = test::freshTempDir();
  const std::string missing = (dir / "absent.h5").string();
  EXPECT_EQ(refusal([&] { DumpReader::open(missing); }), missing + ": no such file");
  EXPECT_EQ(refusal([&] { DumpReader::open(dir.string()); }),
            dir.string() + ": is a directory, not a dump file");
}

TEST(MalformedFile, Truncated) {
  const std::string path = (test::freshTempDir() / "truncated.h5").string();
  RawDump spec;
  buildRaw(path, spec);
  ASSERT_NO_THROW(DumpReader::open(path));  // valid before truncation
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  ::testing::internal::CaptureStderr();
  const std::string message = refusal([&] { DumpReader::open(path); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(message.rfind(path + ": truncated HDF5 file (", 0), 0u) << message;
}

TEST(MalformedFile, RefusalsLeaveOtherReadersIntact) {
  const std::filesystem::path dir = test::freshTempDir();
  const std::string good = (dir / "good.h5").string();
  buildRaw(good, RawDump{});
  const auto reader = DumpReader::open(good);
  const Slab before = reader->read(1, Kind::Keys);
  for (const MalformedCase& c : corpus()) {
    RawDump spec;
    c.mutate(spec);
    const std::string path = (dir / (std::string(c.name) + ".h5")).string();
    buildRaw(path, spec);
    EXPECT_NE(refusal([&] { DumpReader::open(path); }), "(accepted)") << c.name;
  }
  const Slab after = reader->read(1, Kind::Keys);
  EXPECT_EQ(before.data, after.data);
  EXPECT_EQ(reader->info().layers, (std::vector<int>{0, 1}));
  for (size_t i = 0; i < after.data.size(); ++i) ASSERT_EQ(after.data[i], cellValue(i));
}

TEST(MalformedFile, ValueScanCanBeSkippedOrCancelled) {
  RawDump spec;
  const size_t nanAt = (9 * kH + 1) * kD + 5;
  spec.datasets["/layers/1/keys"].pokes[{nanAt, 0}] = std::numeric_limits<float>::quiet_NaN();
  const std::string path = (test::freshTempDir() / "nan.h5").string();
  buildRaw(path, spec);
  OpenOptions noScan;
  noScan.scanValues = false;  // structure only: the NaN is read back as is
  const auto reader = DumpReader::open(path, noScan);
  EXPECT_TRUE(std::isnan(reader->read(1, Kind::Keys).at(9, 1, 5)));

  std::atomic<bool> cancel{true};
  TaskControl control;
  control.cancel = &cancel;
  OpenOptions cancelled;
  cancelled.control = &control;
  try {
    DumpReader::open(path, cancelled);
    FAIL() << "not cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Cancelled);
  }
}

TEST(ForeignLayouts, BigEndianHalfFixedStringsNarrowInts) {
  // Attributes: fixed-length kvq_format, big-endian int32 version, uint8 num_layers
  // (all in the default RawDump); data: big-endian IEEE half and tagged bfloat16.
  const std::filesystem::path dir = test::freshTempDir();
  for (Storage storage : {Storage::F16BE, Storage::U16Bf16}) {
    RawDump spec;
    for (auto& [p, ds] : spec.datasets) ds.storage = storage;
    spec.attrs["num_q_heads"] = 2LL;
    spec.attrs["rope_theta"] = 10000LL;  // an integer is accepted for a float attribute
    spec.datasets["/layers/0/queries"].storage = storage;
    spec.datasets["/layers/1/queries"].storage = storage;
    const std::string path = (dir / (storage == Storage::F16BE ? "be_half.h5" : "bf16.h5")).string();
    buildRaw(path, spec);
    const auto reader = DumpReader::open(path);
    EXPECT_EQ(reader->info().dtype, storage == Storage::F16BE ? DType::Float16 : DType::BFloat16);
    EXPECT_TRUE(reader->info().hasQueries);
    EXPECT_EQ(reader->info().numLayers, 4);
    EXPECT_EQ(reader->info().ropeTheta.value_or(0), 10000.0);
    const Slab q = reader->read(0, Kind::Queries);
    for (size_t i = 0; i < q.data.size(); ++i) {
      const float want = storage == Storage::F16BE ? roundToHalf(cellValue(i))
                                                   : bfloat16ToFloat(floatToBfloat16(cellValue(i)));
      ASSERT_EQ(q.data[i], want) << i;
    }
  }
}

// ---- the committed corpus: tests/data/malformed/manifest.tsv ----
// Written by scripts/make_fuzz_corpus.py (one file per policy: links, external and
// virtual storage, short/long/bomb chunks, filters, strings, unwritten vectors,
// checksums) plus files found by fuzzing, each with the refusal it must get.

struct CorpusFile {
  std::string reader;    // "dump" or "codebook"
  std::string file;      // under tests/data/malformed
  std::string expected;  // after "<path>: "
};

void PrintTo(const CorpusFile& c, std::ostream* os) {
  *os << c.file;
}

std::vector<CorpusFile> corpusFiles() {
  std::ifstream manifest(std::string(KVQ_TEST_DATA_DIR) + "/malformed/manifest.tsv");
  std::vector<CorpusFile> files;
  std::string line;
  while (std::getline(manifest, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    CorpusFile f;
    std::string origin;
    std::getline(fields, f.reader, '\t');
    std::getline(fields, f.file, '\t');
    std::getline(fields, origin, '\t');
    std::getline(fields, f.expected);
    files.push_back(f);
  }
  return files;
}

class MalformedCorpusFile : public ::testing::TestWithParam<CorpusFile> {};

TEST_P(MalformedCorpusFile, IsRefusedWithItsMessage) {
  const CorpusFile& c = GetParam();
  const std::string path = std::string(KVQ_TEST_DATA_DIR) + "/malformed/" + c.file;
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  ::testing::internal::CaptureStderr();
  const std::string message = refusal([&] {
    if (c.reader == "dump") {
      DumpReader::open(path);
    } else {
      readCodebookFile(path);
    }
  });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "HDF5 printed to stderr";
  EXPECT_EQ(message, path + ": " + c.expected);
}

INSTANTIATE_TEST_SUITE_P(Files, MalformedCorpusFile, ::testing::ValuesIn(corpusFiles()),
                         [](const ::testing::TestParamInfo<CorpusFile>& p) {
                           std::string name = p.param.file;
                           for (char& ch : name) {
                             if (std::isalnum(static_cast<unsigned char>(ch)) == 0) ch = '_';
                           }
                           return name;
                         });

TEST(MalformedCorpusFile, ManifestIsNotEmpty) {
  EXPECT_GE(corpusFiles().size(), 30u);
}

}  // namespace
}  // namespace kvq
