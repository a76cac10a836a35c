#include "h5/codebook_h5.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"

namespace kvq::h5io {
namespace {

std::string objectName(hid_t obj) {
  char buffer[512] = "";
  const ssize_t n = H5Iget_name(obj, buffer, sizeof buffer);
  return n > 0 ? std::string(buffer) : std::string("/");
}

[[noreturn]] void attrFailure(hid_t obj, const std::string& name, const std::string& what) {
  std::string file;
  char buffer[1024] = "";
  if (H5Fget_name(obj, buffer, sizeof buffer) > 0) file = buffer;
  throwBadInput(file, objectName(obj) + " " + name, what);
}

h5::Attribute createAttr(hid_t obj, const std::string& name, hid_t type, hid_t space) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  h5::Attribute attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attr) attrFailure(obj, name, "cannot create attribute");
  return attr;
}

h5::Dataspace simpleSpace(const std::vector<hsize_t>& shape) {
  return h5::Dataspace(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr));
}

}  // namespace

void writeAttr(hid_t obj, const std::string& name, const std::string& value) {
  h5::Datatype type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  h5::Dataspace space(H5Screate(H5S_SCALAR));
  h5::Attribute attr = createAttr(obj, name, type.get(), space.get());
  const char* text = value.c_str();
  if (H5Awrite(attr.get(), type.get(), &text) < 0) attrFailure(obj, name, "cannot write attribute");
}

void writeAttr(hid_t obj, const std::string& name, int64_t value) {
  h5::Dataspace space(H5Screate(H5S_SCALAR));
  h5::Attribute attr = createAttr(obj, name, H5T_STD_I64LE, space.get());
  if (H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0) attrFailure(obj, name, "cannot write attribute");
}

void writeAttr(hid_t obj, const std::string& name, double value) {
  h5::Dataspace space(H5Screate(H5S_SCALAR));
  h5::Attribute attr = createAttr(obj, name, H5T_IEEE_F64LE, space.get());
  if (H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0) attrFailure(obj, name, "cannot write attribute");
}

void writeAttr(hid_t obj, const std::string& name, const std::vector<double>& values) {
  h5::Dataspace space = simpleSpace({static_cast<hsize_t>(values.size())});
  h5::Attribute attr = createAttr(obj, name, H5T_IEEE_F64LE, space.get());
  if (!values.empty() && H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
    attrFailure(obj, name, "cannot write attribute");
  }
}

h5::Datatype makeFloat16Type() {
  h5::Datatype type(H5Tcopy(H5T_IEEE_F32LE));
  // sign bit 15, exponent at bit 10 (5 bits), mantissa at bit 0 (10 bits), bias 15.
  H5Tset_fields(type.get(), 15, 10, 5, 0, 10);
  H5Tset_size(type.get(), 2);
  H5Tset_ebias(type.get(), 15);
  return type;
}

// ---- Writer -----------------------------------------------------------------

Writer::Writer(std::string path, std::string temporary)
    : m_path(std::move(path)), m_temporary(std::move(temporary)) {
  m_file = h5::File(H5Fcreate(m_temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!m_file) throwBadInput(m_path, "", "cannot create the file (directory missing or not writable)");
}

Writer::~Writer() {
  if (!m_closed) {
    m_file.reset();
    discardTemporaryFile(m_temporary);
  }
}

void Writer::fail(const std::string& where, const std::string& what) const {
  const std::string detail = h5::lastErrorText();
  throwBadInput(m_path, where, detail.empty() ? what : what + " (" + detail + ")");
}

h5::Group Writer::createGroups(const std::string& path) {
  if (H5Lexists(m_file.get(), path.c_str(), H5P_DEFAULT) > 0) {
    h5::Group group(H5Gopen2(m_file.get(), path.c_str(), H5P_DEFAULT));
    if (!group) fail(path, "cannot open group");
    return group;
  }
  h5::PropList lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  h5::Group group(H5Gcreate2(m_file.get(), path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!group) fail(path, "cannot create group");
  return group;
}

h5::Dataset Writer::createDataset(hid_t loc, const std::string& name, hid_t fileType,
                                  const std::vector<hsize_t>& shape) {
  h5::Dataspace space = simpleSpace(shape);
  h5::Dataset dataset(
      H5Dcreate2(loc, name.c_str(), fileType, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!dataset) fail(objectName(loc) + "/" + name, "cannot create dataset");
  return dataset;
}

void Writer::writeFloat32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape,
                          const float* data) {
  h5::Dataset dataset = createDataset(loc, name, H5T_IEEE_F32LE, shape);
  if (H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(objectName(loc) + "/" + name, "cannot write dataset");
  }
}

void Writer::writeInt32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape,
                        const int32_t* data) {
  h5::Dataset dataset = createDataset(loc, name, H5T_STD_I32LE, shape);
  if (H5Dwrite(dataset.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(objectName(loc) + "/" + name, "cannot write dataset");
  }
}

void Writer::writeRows(hid_t dataset, hid_t memType, const std::vector<hsize_t>& shape, hsize_t row,
                       hsize_t rows, const void* data) {
  if (rows == 0) return;
  h5::Dataspace fileSpace(H5Dget_space(dataset));
  std::vector<hsize_t> start(shape.size(), 0), count = shape;
  start[0] = row;
  count[0] = rows;
  H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  h5::Dataspace memSpace = simpleSpace(count);
  if (H5Dwrite(dataset, memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, data) < 0) {
    fail(objectName(dataset), "cannot write rows");
  }
}

void Writer::close() {
  if (H5Fflush(m_file.get(), H5F_SCOPE_GLOBAL) < 0 || !m_file.reset())
    fail("", "cannot flush and close the file");
  m_closed = true;
}

// ---- Reader -----------------------------------------------------------------

Reader::Reader(std::string path) : m_path(std::move(path)) {
  if (H5Fis_hdf5(m_path.c_str()) <= 0) throwBadInput(m_path, "", "not an HDF5 file (or it cannot be read)");
  m_file = h5::File(H5Fopen(m_path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!m_file) fail("", "cannot open the file");
}

void Reader::fail(const std::string& where, const std::string& what) const {
  throwBadInput(m_path, where, what);
}

bool Reader::hasAttr(hid_t obj, const std::string& name) const {
  return H5Aexists(obj, name.c_str()) > 0;
}

std::string Reader::stringAttr(hid_t obj, const std::string& name) const {
  const std::string where = objectName(obj) + " " + name;
  if (!hasAttr(obj, name)) fail(where, "missing attribute");
  h5::Attribute attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  h5::Datatype type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_STRING) fail(where, "attribute is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    h5::Datatype memType(H5Tcopy(H5T_C_S1));
    H5Tset_size(memType.get(), H5T_VARIABLE);
    H5Tset_cset(memType.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(attr.get(), memType.get(), &text) < 0) fail(where, "cannot read attribute");
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  const size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  if (H5Aread(attr.get(), type.get(), value.data()) < 0) fail(where, "cannot read attribute");
  value.resize(std::strlen(value.c_str()));
  return value;
}

int64_t Reader::intAttr(hid_t obj, const std::string& name) const {
  const std::string where = objectName(obj) + " " + name;
  if (!hasAttr(obj, name)) fail(where, "missing attribute");
  h5::Attribute attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  h5::Datatype type(H5Aget_type(attr.get()));
  h5::Dataspace space(H5Aget_space(attr.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER || H5Sget_simple_extent_npoints(space.get()) != 1) {
    fail(where, "attribute is not one integer");
  }
  int64_t value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &value) < 0) fail(where, "cannot read attribute");
  return value;
}

double Reader::doubleAttr(hid_t obj, const std::string& name) const {
  const std::vector<double> values = doubleArrayAttr(obj, name);
  if (values.size() != 1) fail(objectName(obj) + " " + name, "attribute is not one number");
  return values[0];
}

std::vector<double> Reader::doubleArrayAttr(hid_t obj, const std::string& name) const {
  const std::string where = objectName(obj) + " " + name;
  if (!hasAttr(obj, name)) fail(where, "missing attribute");
  h5::Attribute attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  h5::Datatype type(H5Aget_type(attr.get()));
  h5::Dataspace space(H5Aget_space(attr.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail(where, "attribute is not numeric");
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > (1 << 20)) fail(where, "attribute has an unreasonable size");
  std::vector<double> values(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0)
    fail(where, "cannot read attribute");
  return values;
}

h5::Group Reader::openGroup(const std::string& path) const {
  if (H5Lexists(m_file.get(), path.c_str(), H5P_DEFAULT) <= 0) fail(path, "missing group");
  h5::Group group(H5Gopen2(m_file.get(), path.c_str(), H5P_DEFAULT));
  if (!group) fail(path, "not a group");
  return group;
}

std::vector<std::string> Reader::children(const std::string& path) const {
  const h5::Group group = openGroup(path);
  H5G_info_t info;
  if (H5Gget_info(group.get(), &info) < 0) fail(path, "cannot list group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size =
        H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (size < 0) fail(path, "cannot list group");
    std::string name(static_cast<size_t>(size) + 1, '\0');
    H5Lget_name_by_idx(group.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<size_t>(size));
    names.push_back(name);
  }
  auto numeric = [](const std::string& s) {
    return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
  };
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    if (numeric(a) && numeric(b)) return std::stol(a) < std::stol(b);
    if (numeric(a) != numeric(b)) return numeric(a);
    return a < b;
  });
  return names;
}

h5::Dataset Reader::openChecked(const std::string& path, const std::vector<hsize_t>& shape) const {
  if (H5Lexists(m_file.get(), path.c_str(), H5P_DEFAULT) <= 0) fail(path, "missing dataset");
  h5::Dataset dataset(H5Dopen2(m_file.get(), path.c_str(), H5P_DEFAULT));
  if (!dataset) fail(path, "not a dataset");
  h5::Dataspace space(H5Dget_space(dataset.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(rank > 0 ? static_cast<size_t>(rank) : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (dims != shape) {
    auto text = [](const std::vector<hsize_t>& s) {
      std::string out = "[";
      for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
      return out + "]";
    };
    fail(path, "shape " + text(dims) + " differs from the expected " + text(shape));
  }
  return dataset;
}

std::vector<float> Reader::readFloat32(const std::string& path, const std::vector<hsize_t>& shape) const {
  h5::Dataset dataset = openChecked(path, shape);
  h5::Datatype type(H5Dget_type(dataset.get()));
  if (H5Tget_class(type.get()) != H5T_FLOAT) fail(path, "dataset is not floating point");
  size_t count = 1;
  for (hsize_t s : shape) count *= s;
  std::vector<float> data(count);
  if (H5Dread(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    fail(path, "cannot read dataset");
  }
  return data;
}

std::vector<int> Reader::readInt32(const std::string& path, const std::vector<hsize_t>& shape) const {
  h5::Dataset dataset = openChecked(path, shape);
  h5::Datatype type(H5Dget_type(dataset.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER) fail(path, "dataset is not integer");
  size_t count = 1;
  for (hsize_t s : shape) count *= s;
  std::vector<int> data(count);
  if (H5Dread(dataset.get(), H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    fail(path, "cannot read dataset");
  }
  return data;
}

}  // namespace kvq::h5io
