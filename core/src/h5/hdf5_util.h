// Small HDF5 helpers shared by the dump reader and writer: scalar attributes of
// any integer/string flavour, type descriptions for messages, the IEEE half type.
// Readers throw kvq::Error(BadInput) naming `file` and the object's HDF5 path.
#pragma once

#include <optional>
#include <string>

#include "h5/hdf5_handle.h"

namespace kvq::h5 {

// Where an object lives, for messages: the file on disk and the HDF5 path inside.
struct Location {
  const std::string& file;
  std::string path;  // e.g. "/" or "/layers/3/keys"
};

// True when `name` is a link directly below `loc` (no error when absent).
bool linkExists(hid_t loc, const std::string& name);

// Opens `name` below `loc` and checks that it is a group / dataset; throws
// "<path>: is not a group" etc. otherwise.
Group openGroup(hid_t loc, const std::string& name, const Location& where);
Dataset openDataset(hid_t loc, const std::string& name, const Location& where);

// Scalar (one-element) attributes. nullopt when absent; throws when present but
// of the wrong class or not a single element. Strings may be fixed or variable
// length; integers any width and signedness; floats also accept integers.
std::optional<std::string> readStringAttribute(hid_t obj, const char* name, const Location& where);
std::optional<long long> readIntAttribute(hid_t obj, const char* name, const Location& where);
std::optional<double> readFloatAttribute(hid_t obj, const char* name, const Location& where);

// Scalar attributes as h5py writes them: variable-length UTF-8 strings, int64,
// float64. Throw Error(Internal) naming `where` on failure.
void writeStringAttribute(hid_t obj, const char* name, const std::string& value, const std::string& where);
void writeIntAttribute(hid_t obj, const char* name, long long value, const std::string& where);
void writeFloatAttribute(hid_t obj, const char* name, double value, const std::string& where);

// "float32", "float16", "int32", "uint16", "string", "compound", ... for messages.
std::string describeType(hid_t type);

// IEEE binary16 as h5py/numpy store float16: H5T_FLOAT, 2 bytes, sign bit 15,
// exponent bits 10..14 (bias 15), mantissa bits 0..9, little endian.
Datatype makeHalfType();
bool isIeeeHalf(hid_t type);

}  // namespace kvq::h5
