#include "h5/hdf5_util.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/step_trace.h"

namespace kvq::h5 {
namespace {

constexpr size_t kMaxLinkNameBytes = 255;

[[noreturn]] void badAttribute(const Location& where, const char* name, const std::string& problem) {
  throwBadInput(where.file, where.path, std::string("attribute '") + name + "' " + problem);
}

// Opens attribute `name` and checks it holds exactly one element; returns an
// invalid handle when absent.
// For the isolated validator's crash reports (kvq/base/step_trace.h).
void traceAttribute(const char* name, const Location& where) {
  if (stepTracing()) {
    traceStep(where.path == "/" ? std::string("reading root attribute '") + name + "'"
                                : std::string("reading attribute '") + name + "' of " + where.path);
  }
}

Attribute openScalarAttribute(hid_t obj, const char* name, const Location& where) {
  traceAttribute(name, where);
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

[[noreturn]] void tooLong(const Location& where, const char* name, size_t bytes) {
  badAttribute(where, name,
               "is " + std::to_string(bytes) + " bytes long, over the limit of " +
                   std::to_string(kMaxStringBytes) + " bytes");
}

// The bytes of a fixed-length string as stored, padding included. The memory type
// has the file's size, padding and character set, so HDF5 copies without change.
std::string readFixedBytes(hid_t attr, hid_t fileType, const Location& where, const char* name) {
  const size_t size = H5Tget_size(fileType);
  if (size == 0) badAttribute(where, name, "has an invalid string size of 0");
  if (size > kMaxStringBytes) tooLong(where, name, size);  // before allocating
  Datatype memType(H5Tcopy(H5T_C_S1));
  if (!memType || H5Tset_size(memType.get(), size) < 0 ||
      H5Tset_strpad(memType.get(), H5Tget_strpad(fileType)) < 0 ||
      H5Tset_cset(memType.get(), H5Tget_cset(fileType)) < 0) {
    badAttribute(where, name, "has an unsupported string type");
  }
  std::string bytes(size, '\0');
  if (H5Aread(attr, memType.get(), bytes.data()) < 0) {
    badAttribute(where, name, "cannot be read: " + lastErrorText());
  }
  return bytes;
}

// The bytes of a variable-length string with their stored length: read as a
// sequence of bytes (HDF5 converts the string to it), so an embedded NUL stays
// visible where a C string would silently end.
std::string readVariableBytes(hid_t attr, const Location& where, const char* name) {
  Datatype memType(H5Tvlen_create(H5T_NATIVE_UCHAR));
  hvl_t seq{0, nullptr};
  if (!memType || H5Aread(attr, memType.get(), &seq) < 0) {
    badAttribute(where, name, "cannot be read: " + lastErrorText());
  }
  const std::unique_ptr<void, herr_t (*)(void*)> owned(seq.p, H5free_memory);
  if (seq.len > kMaxStringBytes) tooLong(where, name, seq.len);
  if (seq.len > 0 && seq.p == nullptr) badAttribute(where, name, "cannot be read");
  return seq.len == 0 ? std::string() : std::string(static_cast<const char*>(seq.p), seq.len);
}

// Drops the padding HDF5 allows after a string's text.
void stripPadding(std::string& bytes, H5T_str_t pad) {
  const char filler = pad == H5T_STR_SPACEPAD ? ' ' : '\0';
  while (!bytes.empty() && bytes.back() == filler) bytes.pop_back();
}

// `text` with every invalid UTF-8 byte replaced by U+FFFD.
std::string toValidUtf8(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    const size_t bad = firstInvalidUtf8(text);
    out += text.substr(0, bad);
    if (bad == std::string_view::npos) break;
    out += "\xEF\xBF\xBD";
    text.remove_prefix(bad + 1);
  }
  return out;
}

}  // namespace

bool linkExists(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

void requireHardLink(hid_t loc, const std::string& name, const Location& where) {
  H5L_info_t link;
  if (H5Lget_info(loc, name.c_str(), &link, H5P_DEFAULT) < 0) {
    throwBadInput(where.file, where.path, "cannot be looked up: " + lastErrorText());
  }
  if (link.type != H5L_TYPE_HARD) {
    throwBadInput(where.file, where.path,
                  "is a soft or external link (the file's objects must be stored in the file itself)");
  }
}

namespace {

hid_t openObjectOfType(hid_t loc, const std::string& name, const Location& where, H5I_type_t wanted,
                       const char* what) {
  if (stepTracing()) traceStep("opening " + where.path);
  if (name != "/") requireHardLink(loc, name, where);
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

std::vector<std::string> linkNames(hid_t group, const Location& where, size_t maxLinks) {
  if (stepTracing()) traceStep("listing " + where.path);
  H5G_info_t info;
  if (H5Gget_info(group, &info) < 0) throwBadInput(where.file, where.path, "cannot list: " + lastErrorText());
  if (info.nlinks > maxLinks) {
    throwBadInput(where.file, where.path,
                  "holds " + std::to_string(info.nlinks) + " entries, more than the " +
                      std::to_string(maxLinks) + " expected");
  }
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length =
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (length < 0 || static_cast<size_t>(length) > kMaxLinkNameBytes) {
      throwBadInput(where.file, where.path, "holds an unreadable or overlong link name");
    }
    std::string name(static_cast<size_t>(length) + 1, '\0');
    if (H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                           H5P_DEFAULT) != length) {
      throwBadInput(where.file, where.path, "holds an unreadable link name");
    }
    name.resize(static_cast<size_t>(length));
    names.push_back(std::move(name));
  }
  return names;
}

bool parseDecimalIndex(const std::string& name, int& index) {
  if (name.empty() || name.size() > 9 || (name.size() > 1 && name[0] == '0')) return false;
  index = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
    index = index * 10 + (c - '0');
  }
  return true;
}

std::optional<std::string> readStringAttribute(hid_t obj, const char* name, const Location& where) {
  Attribute attr = openScalarAttribute(obj, name, where);
  if (!attr) return std::nullopt;
  Datatype fileType(H5Aget_type(attr.get()));
  if (!fileType || H5Tget_class(fileType.get()) != H5T_STRING) {
    badAttribute(where, name, "must be a string (found " + describeType(fileType.get()) + ")");
  }
  const htri_t variable = H5Tis_variable_str(fileType.get());
  if (variable < 0) badAttribute(where, name, "has an unreadable string type");
  std::string value = variable > 0 ? readVariableBytes(attr.get(), where, name)
                                   : readFixedBytes(attr.get(), fileType.get(), where, name);
  stripPadding(value, variable > 0 ? H5T_STR_NULLTERM : H5Tget_strpad(fileType.get()));
  if (const size_t nul = value.find('\0'); nul != std::string::npos) {
    badAttribute(where, name,
                 "holds a NUL byte at offset " + std::to_string(nul) + ": " + quoteForMessage(value));
  }
  if (const std::string problem = utf8Problem(value); !problem.empty()) {
    badAttribute(where, name, "is not valid UTF-8 (" + problem + "): " + quoteForMessage(value));
  }
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
  if (cls != H5T_INTEGER && (cls != H5T_FLOAT || !isIeeeFloat(fileType.get()))) {
    badAttribute(where, name, "must be a number (found " + describeType(fileType.get()) + ")");
  }
  double value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) badAttribute(where, name, "cannot be read");
  return value;
}

std::optional<std::vector<double>> readFloatArrayAttribute(hid_t obj, const char* name, const Location& where,
                                                           size_t maxCount) {
  traceAttribute(name, where);
  const htri_t exists = H5Aexists(obj, name);
  if (exists < 0) throwBadInput(where.file, where.path, std::string("cannot query attribute '") + name + "'");
  if (exists == 0) return std::nullopt;
  Attribute attr(H5Aopen(obj, name, H5P_DEFAULT));
  Datatype fileType(attr ? H5Aget_type(attr.get()) : H5I_INVALID_HID);
  Dataspace space(attr ? H5Aget_space(attr.get()) : H5I_INVALID_HID);
  const H5T_class_t cls = fileType ? H5Tget_class(fileType.get()) : H5T_NO_CLASS;
  if (cls != H5T_INTEGER && (cls != H5T_FLOAT || !isIeeeFloat(fileType.get()))) {
    badAttribute(where, name, "must be numeric (found " + describeType(fileType.get()) + ")");
  }
  const hssize_t count = space ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (count < 0 || static_cast<size_t>(count) > maxCount ||
      (space && H5Sget_simple_extent_ndims(space.get()) > 1)) {
    badAttribute(where, name, "must hold at most " + std::to_string(maxCount) + " values in one dimension");
  }
  std::vector<double> values(static_cast<size_t>(count));
  if (count > 0 && H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
    badAttribute(where, name, "cannot be read");
  }
  return values;
}

namespace {

void writeAttribute(hid_t obj, const std::string& name, hid_t fileType, hid_t memType, hid_t space,
                    const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Attribute attr(H5Acreate2(obj, name.c_str(), fileType, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attr || H5Awrite(attr.get(), memType, data) < 0) {
    throw Error(ErrorKind::Internal, fileNameOf(obj), objectPath(obj),
                "cannot write attribute '" + name + "': " + lastErrorText());
  }
}

void writeScalar(hid_t obj, const std::string& name, hid_t fileType, hid_t memType, const void* data) {
  Dataspace space(H5Screate(H5S_SCALAR));
  writeAttribute(obj, name, fileType, memType, space.get(), data);
}

}  // namespace

void writeAttr(hid_t obj, const std::string& name, const std::string& value) {
  Datatype type(H5Tcopy(H5T_C_S1));
  if (!type || H5Tset_size(type.get(), H5T_VARIABLE) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0) {
    throwInternal(objectPath(obj), "cannot build the UTF-8 string type: " + lastErrorText());
  }
  // The readers refuse invalid UTF-8, so a stray byte (say in a path) is stored as U+FFFD.
  const std::string text = toValidUtf8(value);
  const char* data = text.c_str();
  writeScalar(obj, name, type.get(), type.get(), &data);
}

void writeAttr(hid_t obj, const std::string& name, const char* value) {
  writeAttr(obj, name, std::string(value));
}

void writeAttr(hid_t obj, const std::string& name, int64_t value) {
  writeScalar(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void writeAttr(hid_t obj, const std::string& name, double value) {
  writeScalar(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void writeAttr(hid_t obj, const std::string& name, const std::vector<double>& values) {
  const hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
  Dataspace space(H5Screate_simple(1, dims, nullptr));
  writeAttribute(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), values.data());
}

std::string describeType(hid_t type) {
  if (type < 0) return "unknown type";
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits) + (isIeeeFloat(type) ? "" : " (non-IEEE layout)");
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

bool isIeeeFloat(hid_t type) {
  struct Layout {
    size_t bytes, exponentBits, mantissaBits, bias;
  };
  static constexpr Layout kLayouts[] = {{2, 5, 10, 15}, {4, 8, 23, 127}, {8, 11, 52, 1023}};
  if (H5Tget_class(type) != H5T_FLOAT) return false;
  const size_t bytes = H5Tget_size(type);
  size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
  const H5T_order_t order = H5Tget_order(type);
  for (const Layout& l : kLayouts) {
    if (bytes == l.bytes && spos == 8 * bytes - 1 && epos == l.mantissaBits && esize == l.exponentBits &&
        mpos == 0 && msize == l.mantissaBits && H5Tget_ebias(type) == l.bias && H5Tget_offset(type) == 0 &&
        H5Tget_precision(type) == 8 * bytes && H5Tget_norm(type) == H5T_NORM_IMPLIED &&
        (order == H5T_ORDER_LE || order == H5T_ORDER_BE)) {
      return true;
    }
  }
  return false;
}

bool isIeeeHalf(hid_t type) {
  return H5Tget_size(type) == 2 && isIeeeFloat(type);
}

namespace {

// A name HDF5 writes into a caller's buffer (H5Iget_name, H5Fget_name): asked for its size
// first; `none` when it has none.
std::string nameFrom(ssize_t (*get)(hid_t, char*, size_t), hid_t obj, const char* none) {
  const ssize_t size = get(obj, nullptr, 0);
  if (size <= 0) return none;
  std::string name(static_cast<size_t>(size) + 1, '\0');
  get(obj, name.data(), name.size());
  name.resize(static_cast<size_t>(size));
  return name;
}

}  // namespace

std::string objectPath(hid_t obj) {
  return nameFrom(H5Iget_name, obj, "/");
}

std::string fileNameOf(hid_t obj) {
  return nameFrom(H5Fget_name, obj, "");
}

}  // namespace kvq::h5
