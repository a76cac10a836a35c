#include "h5/h5_file.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/base/step_trace.h"

namespace kvq::h5 {
namespace {

Dataspace simpleSpace(const std::vector<hsize_t>& shape) {
  return Dataspace(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr));
}

constexpr hsize_t kDefaultChunkBytes = hsize_t{1} << 20;
constexpr hsize_t kMaxWriterChunkBytes = hsize_t{64} << 20;

// Chunked along dimension 0 with Fletcher-32 checksums; nullopt-like invalid
// handle (contiguous) for an empty shape, which has nothing to checksum.
PropList checksummedLayout(const std::vector<hsize_t>& shape, size_t typeBytes, hsize_t chunkRows) {
  PropList dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (shape.empty() || std::find(shape.begin(), shape.end(), hsize_t{0}) != shape.end()) return dcpl;
  hsize_t rowBytes = typeBytes;
  for (size_t d = 1; d < shape.size(); ++d) rowBytes *= shape[d];
  if (chunkRows == 0) chunkRows = std::max<hsize_t>(1, kDefaultChunkBytes / rowBytes);
  chunkRows = std::clamp<hsize_t>(std::min(chunkRows, kMaxWriterChunkBytes / std::max<hsize_t>(rowBytes, 1)),
                                  1, shape[0]);
  std::vector<hsize_t> chunk = shape;
  chunk[0] = chunkRows;
  if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
      H5Pset_fletcher32(dcpl.get()) < 0) {
    return PropList();
  }
  return dcpl;
}

}  // namespace

// ---- Writer -----------------------------------------------------------------

Writer::Writer(std::string path, std::string temporary)
    : m_path(std::move(path)), m_temporary(std::move(temporary)) {
  m_file = File(H5Fcreate(m_temporary.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!m_file) throwBadInput(m_path, "", "cannot create the file (directory missing or not writable)");
}

Writer::~Writer() {
  if (!m_closed) {
    m_file.reset();
    discardTemporaryFile(m_temporary);
  }
}

void Writer::fail(const std::string& where, const std::string& what) const {
  const std::string detail = lastErrorText();
  throwBadInput(m_path, where, detail.empty() ? what : what + " (" + detail + ")");
}

Group Writer::createGroups(const std::string& path) {
  if (H5Lexists(m_file.get(), path.c_str(), H5P_DEFAULT) > 0) {
    Group group(H5Gopen2(m_file.get(), path.c_str(), H5P_DEFAULT));
    if (!group) fail(path, "cannot open group");
    return group;
  }
  PropList lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  Group group(H5Gcreate2(m_file.get(), path.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!group) fail(path, "cannot create group");
  return group;
}

Dataset Writer::createDataset(hid_t loc, const std::string& name, hid_t fileType,
                              const std::vector<hsize_t>& shape, hsize_t chunkRows) {
  const std::string where = objectPath(loc) + "/" + name;
  Dataspace space = simpleSpace(shape);
  PropList dcpl = checksummedLayout(shape, H5Tget_size(fileType), chunkRows);
  if (!space || !dcpl) fail(where, "cannot set up the dataset layout");
  Dataset dataset(H5Dcreate2(loc, name.c_str(), fileType, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!dataset) fail(where, "cannot create dataset");
  return dataset;
}

void Writer::writeFloat32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape,
                          const float* data) {
  Dataset dataset = createDataset(loc, name, H5T_IEEE_F32LE, shape);
  if (H5Dwrite(dataset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(objectPath(loc) + "/" + name, "cannot write dataset");
  }
}

void Writer::writeInt32(hid_t loc, const std::string& name, const std::vector<hsize_t>& shape,
                        const int32_t* data) {
  Dataset dataset = createDataset(loc, name, H5T_STD_I32LE, shape);
  if (H5Dwrite(dataset.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(objectPath(loc) + "/" + name, "cannot write dataset");
  }
}

void Writer::writeRows(hid_t dataset, hid_t memType, const std::vector<hsize_t>& shape, hsize_t row,
                       hsize_t rows, const void* data) {
  if (rows == 0) return;
  Dataspace fileSpace(H5Dget_space(dataset));
  std::vector<hsize_t> start(shape.size(), 0), count = shape;
  start[0] = row;
  count[0] = rows;
  Dataspace memSpace = simpleSpace(count);
  if (!fileSpace || !memSpace ||
      H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) <
          0 ||
      H5Dwrite(dataset, memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, data) < 0) {
    fail(objectPath(dataset), "cannot write rows");
  }
}

void Writer::close() {
  if (H5Fflush(m_file.get(), H5F_SCOPE_GLOBAL) < 0 || !m_file.reset())
    fail("", "cannot flush and close the file");
  m_closed = true;
}

// ---- Reader -----------------------------------------------------------------

Reader::Reader(std::string path, const FileIdentity* expected)
    : m_path(std::move(path)), m_pinned(std::make_unique<PinnedFile>(m_path, expected)) {
  const std::string& name = m_pinned->hdf5Name();
  traceStep("checking the HDF5 signature");
  if (H5Fis_hdf5(name.c_str()) <= 0) throwBadInput(m_path, "", "not an HDF5 file (or it cannot be read)");
  traceStep("opening the file (superblock and root group)");
  m_file = File(H5Fopen(name.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!m_file) fail("", "cannot open the file (" + lastErrorText() + ")");
}

void Reader::fail(const std::string& where, const std::string& what) const {
  throwBadInput(m_path, where, what);
}

bool Reader::hasAttr(hid_t obj, const std::string& name) const {
  if (stepTracing()) traceStep("reading attribute '" + name + "' of " + objectPath(obj));
  const htri_t exists = H5Aexists(obj, name.c_str());
  if (exists < 0) fail(objectPath(obj), "cannot query attribute '" + name + "'");
  return exists > 0;
}

namespace {

template <typename T>
T required(std::optional<T> value, const Location& where, const std::string& name) {
  if (!value) throwBadInput(where.file, where.path, "missing required attribute '" + name + "'");
  return std::move(*value);
}

}  // namespace

std::string Reader::stringAttr(hid_t obj, const std::string& name) const {
  const Location where = at(obj);
  return required(readStringAttribute(obj, name.c_str(), where), where, name);
}

int64_t Reader::intAttr(hid_t obj, const std::string& name) const {
  const Location where = at(obj);
  return required(readIntAttribute(obj, name.c_str(), where), where, name);
}

double Reader::doubleAttr(hid_t obj, const std::string& name) const {
  const Location where = at(obj);
  return required(readFloatAttribute(obj, name.c_str(), where), where, name);
}

std::vector<double> Reader::doubleArrayAttr(hid_t obj, const std::string& name) const {
  const Location where = at(obj);
  return required(readFloatArrayAttribute(obj, name.c_str(), where, size_t{1} << 20), where, name);
}

Group Reader::openGroup(const std::string& path) const {
  Group group = h5::openGroup(m_file.get(), "/", Location{m_path, "/"});
  std::string walked;
  size_t begin = 1;
  while (begin < path.size()) {
    const size_t end = std::min(path.find('/', begin), path.size());
    const std::string name = path.substr(begin, end - begin);
    walked += "/" + name;
    if (!linkExists(group.get(), name)) fail(walked, "missing");
    group = h5::openGroup(group.get(), name, Location{m_path, walked});
    begin = end + 1;
  }
  return group;
}

std::vector<std::string> Reader::children(const std::string& path, size_t maxLinks) const {
  const Group group = openGroup(path);
  std::vector<std::string> names = linkNames(group.get(), Location{m_path, path}, maxLinks);
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

namespace {

size_t elementCount(const std::vector<hsize_t>& shape) {
  size_t count = 1;
  for (hsize_t s : shape) count *= s;
  return count;
}

}  // namespace

template <class T>
std::vector<T> Reader::readChecked(const std::string& path, const std::vector<hsize_t>& shape,
                                   H5T_class_t cls, hid_t memType, const char* rowName) const {
  const size_t slash = path.rfind('/');
  const Group parent = openGroup(path.substr(0, slash));
  const Location where{m_path, path};
  const std::string leaf = path.substr(slash + 1);
  if (!linkExists(parent.get(), leaf)) fail(path, "missing dataset");
  Dataset dataset = h5::openDataset(parent.get(), leaf, where);
  Dataspace space(H5Dget_space(dataset.get()));
  const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
  std::vector<hsize_t> dims(rank > 0 ? static_cast<size_t>(rank) : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  auto text = [](const std::vector<hsize_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  };
  if (dims != shape) fail(path, "shape " + text(dims) + " differs from the expected " + text(shape));
  const Datatype type(H5Dget_type(dataset.get()));
  if (!type || H5Tget_class(type.get()) != cls || (cls == H5T_FLOAT && !isIeeeFloat(type.get()))) {
    fail(path, std::string("dataset is not ") + (cls == H5T_FLOAT ? "IEEE floating point" : "integer") +
                   " (found " + describeType(type.get()) + ")");
  }
  const StorageInfo storage = checkStorage(dataset.get(), where, rowName);
  std::vector<T> data(elementCount(shape));  // allocated once the file agrees with the shape
  if (stepTracing()) traceStep("reading " + path);
  readAllChecked(dataset.get(), storage, memType, data.data(), where, rowName);
  return data;
}

std::vector<float> Reader::readFloat32(const std::string& path, const std::vector<hsize_t>& shape,
                                       const char* rowName) const {
  return readChecked<float>(path, shape, H5T_FLOAT, H5T_NATIVE_FLOAT, rowName);
}

std::vector<int> Reader::readInt32(const std::string& path, const std::vector<hsize_t>& shape,
                                   const char* rowName) const {
  return readChecked<int>(path, shape, H5T_INTEGER, H5T_NATIVE_INT, rowName);
}

}  // namespace kvq::h5
