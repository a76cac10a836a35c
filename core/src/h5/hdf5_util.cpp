#include "h5/hdf5_util.h"

#include <string>
#include <vector>

#include "kvq/base/error.h"

namespace kvq::h5 {
namespace {

// Attribute strings longer than this are refused (checked before allocating for
// fixed-length strings; model names and sources are far shorter).
constexpr size_t kMaxAttributeChars = size_t{1} << 20;

[[noreturn]] void badAttribute(const Location& where, const char* name, const std::string& problem) {
  throwBadInput(where.file, where.path, std::string("attribute '") + name + "' " + problem);
}

// Opens attribute `name` and checks it holds exactly one element; returns an
// invalid handle when absent.
Attribute openScalarAttribute(hid_t obj, const char* name, const Location& where) {
  const htri_t exists = H5Aexists(obj, name);
  if (exists < 0) throwBadInput(where.file, where.path, std::string("cannot query attribute '") + name + "'");
  if (exists == 0) return Attribute();
  Attribute attr(H5Aopen(obj, name, H5P_DEFAULT));
  if (!attr) badAttribute(where, name, "cannot be opened: " + lastErrorText());
  Dataspace space(H5Aget_space(attr.get()));
  if (!space || H5Sget_simple_extent_npoints(space.get()) != 1) {
    badAttribute(where, name, "must hold a single value");
  }
  return attr;
}

}  // namespace

bool linkExists(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

namespace {

hid_t openObjectOfType(hid_t loc, const std::string& name, const Location& where, H5I_type_t wanted,
                       const char* what) {
  const hid_t id = H5Oopen(loc, name.c_str(), H5P_DEFAULT);
  if (id < 0) throwBadInput(where.file, where.path, "cannot be opened: " + lastErrorText());
  if (H5Iget_type(id) != wanted) {
    H5Oclose(id);
    throwBadInput(where.file, where.path, std::string("is not ") + what);
  }
  return id;
}

}  // namespace

Group openGroup(hid_t loc, const std::string& name, const Location& where) {
  return Group(openObjectOfType(loc, name, where, H5I_GROUP, "a group"));
}

Dataset openDataset(hid_t loc, const std::string& name, const Location& where) {
  return Dataset(openObjectOfType(loc, name, where, H5I_DATASET, "a dataset"));
}

std::optional<std::string> readStringAttribute(hid_t obj, const char* name, const Location& where) {
  Attribute attr = openScalarAttribute(obj, name, where);
  if (!attr) return std::nullopt;
  Datatype fileType(H5Aget_type(attr.get()));
  if (!fileType || H5Tget_class(fileType.get()) != H5T_STRING) {
    badAttribute(where, name, "must be a string (found " + describeType(fileType.get()) + ")");
  }
  Datatype memType(H5Tcopy(H5T_C_S1));
  H5Tset_cset(memType.get(), H5Tget_cset(fileType.get()));
  std::string value;
  if (H5Tis_variable_str(fileType.get()) > 0) {
    H5Tset_size(memType.get(), H5T_VARIABLE);
    char* text = nullptr;
    if (H5Aread(attr.get(), memType.get(), &text) < 0) badAttribute(where, name, "cannot be read");
    if (text != nullptr) {
      value = text;
      H5free_memory(text);
    }
  } else {
    const size_t size = H5Tget_size(fileType.get());
    if (size == 0 || size > kMaxAttributeChars) badAttribute(where, name, "has an implausible string size");
    H5Tset_size(memType.get(), size + 1);  // room for the terminator HDF5 adds
    H5Tset_strpad(memType.get(), H5T_STR_NULLTERM);
    std::vector<char> buffer(size + 1, '\0');
    if (H5Aread(attr.get(), memType.get(), buffer.data()) < 0) badAttribute(where, name, "cannot be read");
    value.assign(buffer.data());
  }
  if (value.size() > kMaxAttributeChars) badAttribute(where, name, "is implausibly long");
  return value;
}

std::optional<long long> readIntAttribute(hid_t obj, const char* name, const Location& where) {
  Attribute attr = openScalarAttribute(obj, name, where);
  if (!attr) return std::nullopt;
  Datatype fileType(H5Aget_type(attr.get()));
  if (!fileType || H5Tget_class(fileType.get()) != H5T_INTEGER) {
    badAttribute(where, name, "must be an integer (found " + describeType(fileType.get()) + ")");
  }
  long long value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_LLONG, &value) < 0) badAttribute(where, name, "cannot be read");
  return value;
}

std::optional<double> readFloatAttribute(hid_t obj, const char* name, const Location& where) {
  Attribute attr = openScalarAttribute(obj, name, where);
  if (!attr) return std::nullopt;
  Datatype fileType(H5Aget_type(attr.get()));
  const H5T_class_t cls = fileType ? H5Tget_class(fileType.get()) : H5T_NO_CLASS;
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    badAttribute(where, name, "must be a number (found " + describeType(fileType.get()) + ")");
  }
  double value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) badAttribute(where, name, "cannot be read");
  return value;
}

namespace {

void writeAttribute(hid_t obj, const char* name, hid_t fileType, hid_t memType, const void* data,
                    const std::string& where) {
  Dataspace space(H5Screate(H5S_SCALAR));
  Attribute attr(H5Acreate2(obj, name, fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr || H5Awrite(attr.get(), memType, data) < 0) {
    throwInternal(where, std::string("cannot write attribute '") + name + "': " + lastErrorText());
  }
}

}  // namespace

void writeStringAttribute(hid_t obj, const char* name, const std::string& value, const std::string& where) {
  Datatype type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* text = value.c_str();
  writeAttribute(obj, name, type.get(), type.get(), &text, where);
}

void writeIntAttribute(hid_t obj, const char* name, long long value, const std::string& where) {
  writeAttribute(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value, where);
}

void writeFloatAttribute(hid_t obj, const char* name, double value, const std::string& where) {
  writeAttribute(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, where);
}

std::string describeType(hid_t type) {
  if (type < 0) return "unknown type";
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      if (bits == 16 && !isIeeeHalf(type)) return "float16 (non-IEEE layout)";
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound (e.g. complex)";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_REFERENCE:
      return "reference";
    case H5T_TIME:
      return "time";
    default:
      return "unknown type";
  }
}

Datatype makeHalfType() {
  Datatype type(H5Tcopy(H5T_IEEE_F32LE));
  // Order matters: shrink the fields before the size, then fix the bias.
  if (!type || H5Tset_fields(type.get(), 15, 10, 5, 0, 10) < 0 || H5Tset_size(type.get(), 2) < 0 ||
      H5Tset_ebias(type.get(), 15) < 0) {
    throwInternal("HDF5", "cannot build the IEEE half datatype: " + lastErrorText());
  }
  return type;
}

bool isIeeeHalf(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2) return false;
  size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
  const H5T_order_t order = H5Tget_order(type);
  return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(type) == 15 &&
         H5Tget_offset(type) == 0 && (order == H5T_ORDER_LE || order == H5T_ORDER_BE);
}

}  // namespace kvq::h5
