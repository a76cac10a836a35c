// The one layer of HDF5 helpers under every file the engine reads and writes (dumps,
// codebook files, codes files): links and objects opened only through hard links,
// scalar attributes read under one string policy and written as h5py writes them,
// type descriptions for messages, the IEEE half type. Private to kvq_core.
// Readers throw kvq::Error(BadInput) naming `file`, the object's HDF5 path and the
// problem; writers throw Error(Internal) naming the file and object.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "h5/hdf5_handle.h"
#include "kvq/base/text.h"

namespace kvq::h5 {

// Where an object lives, for messages: the file on disk and the HDF5 path inside.
struct Location {
  const std::string& file;
  std::string path;  // e.g. "/" or "/layers/3/keys"
};

// Longest string attribute accepted, in bytes (model names and sources are far
// shorter). Fixed-length strings are checked before anything is read.
constexpr size_t kMaxStringBytes = size_t{64} << 10;

// ---- links and objects ------------------------------------------------------

// True when `name` is a link directly below `loc` (no error when absent).
bool linkExists(hid_t loc, const std::string& name);

// Throws "<where>: is a soft or external link (...)" unless `name` below `loc` is
// a hard link: soft links make one object appear twice, external ones make the
// reader open a file the user never named.
void requireHardLink(hid_t loc, const std::string& name, const Location& where);

// Open `name` below `loc` after requireHardLink and check that it is a group /
// dataset; throw "<path>: is not a group" etc. otherwise.
Group openGroup(hid_t loc, const std::string& name, const Location& where);
Dataset openDataset(hid_t loc, const std::string& name, const Location& where);

// Names of the links directly in `group`, in HDF5's name order; refuses more than
// maxLinks entries and names longer than 255 bytes (before reading them).
std::vector<std::string> linkNames(hid_t group, const Location& where, size_t maxLinks);

// A decimal index without sign, spaces or leading zeros ("0", "17"; not "00",
// "+1", " 1") below 10^9: the names of layer groups in every kvq file.
bool parseDecimalIndex(const std::string& name, int& index);

// ---- attributes ---------------------------------------------------------------

// Scalar (one-element) attributes. nullopt when absent; throws when present but of
// the wrong class or not a single element. Strings may be fixed or variable length;
// they must be valid UTF-8 without embedded NUL and at most kMaxStringBytes long.
// Integers any width and signedness; floats any IEEE layout (isIeeeFloat), and
// integers.
std::optional<std::string> readStringAttribute(hid_t obj, const char* name, const Location& where);
std::optional<long long> readIntAttribute(hid_t obj, const char* name, const Location& where);
std::optional<double> readFloatAttribute(hid_t obj, const char* name, const Location& where);
// A rank-0/1 numeric attribute of at most maxCount values, as float64.
std::optional<std::vector<double>> readFloatArrayAttribute(hid_t obj, const char* name, const Location& where,
                                                           size_t maxCount);

// Attributes as h5py writes Python values: variable-length UTF-8 strings (the text
// must be valid UTF-8), int64, float64, and [n] float64 for a vector. An existing
// attribute of the same name is replaced.
void writeAttr(hid_t obj, const std::string& name, const std::string& value);
void writeAttr(hid_t obj, const std::string& name, const char* value);
void writeAttr(hid_t obj, const std::string& name, int64_t value);
void writeAttr(hid_t obj, const std::string& name, double value);
void writeAttr(hid_t obj, const std::string& name, const std::vector<double>& values);

// ---- text and types for messages ----------------------------------------------------

// utf8Problem and quoteForMessage: kvq/base/text.h (the GGUF reader uses them too).

// "float32", "float16", "int32", "uint16", "string", "compound", ... for messages.
std::string describeType(hid_t type);

// IEEE binary16 as h5py/numpy store float16: H5T_FLOAT, 2 bytes, sign bit 15,
// exponent bits 10..14 (bias 15), mantissa bits 0..9, little endian.
Datatype makeHalfType();
// An IEEE binary16/32/64 layout in either byte order. HDF5 converts any float
// layout a file describes, overlapping or absurd fields included, into garbage;
// the readers accept only these.
bool isIeeeFloat(hid_t type);
bool isIeeeHalf(hid_t type);

// The HDF5 path of an object ("/" when unnamed) and the name of its file.
std::string objectPath(hid_t obj);
std::string fileNameOf(hid_t obj);

}  // namespace kvq::h5
