#include "kvq/model/gguf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "kvq/base/error.h"
#include "kvq/base/text.h"
#include "kvq/model/gguf_dequantize.h"

namespace kvq {

namespace {

constexpr int kMaxDims = 4;               // GGML_MAX_DIMS
constexpr size_t kMaxNameBytes = 64;      // GGML_MAX_NAME: tensor names are at most 64 bytes
constexpr uint64_t kMaxKeyBytes = 65535;  // the GGUF specification: keys are at most 65535 bytes
constexpr int kMaxArrayDepth = 4;         // arrays of arrays of ... (the spec allows nesting)
// Largest header GgufFile::open reads into memory (tokenizer vocabularies are a few MB).
constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 30;
// Counts checked only against the file size let a small sparse file claim billions of entries,
// and a parsed value takes ~50 bytes for each byte it may occupy in the file; so tensor and
// array-value counts have caps of their own, far above real models (a few thousand tensors; a
// vocabulary's tokens, scores, types and merges hold about a million values in all).
constexpr uint64_t kMaxTensors = uint64_t{1} << 16;
constexpr uint64_t kMaxArrayValues = uint64_t{1} << 23;

// Sizes of every ggml type number (ggml.h); unsupported ones are known so a file parses.
const GgmlTypeInfo* typeTable(uint32_t type) {
  static const std::array<GgmlTypeInfo, 42> kTable = {{
      {"F32", 1, 4, true},         {"F16", 1, 2, true},         {"Q4_0", 32, 18, true},
      {"Q4_1", 32, 20, true},      {nullptr, 0, 0, false},      {nullptr, 0, 0, false},
      {"Q5_0", 32, 22, false},     {"Q5_1", 32, 24, false},     {"Q8_0", 32, 34, true},
      {"Q8_1", 32, 36, false},     {"Q2_K", 256, 84, false},    {"Q3_K", 256, 110, false},
      {"Q4_K", 256, 144, true},    {"Q5_K", 256, 176, true},    {"Q6_K", 256, 210, true},
      {"Q8_K", 256, 292, false},   {"IQ2_XXS", 256, 66, false}, {"IQ2_XS", 256, 74, false},
      {"IQ3_XXS", 256, 98, false}, {"IQ1_S", 256, 50, false},   {"IQ4_NL", 32, 18, false},
      {"IQ3_S", 256, 110, false},  {"IQ2_S", 256, 82, false},   {"IQ4_XS", 256, 136, false},
      {"I8", 1, 1, false},         {"I16", 1, 2, false},        {"I32", 1, 4, false},
      {"I64", 1, 8, false},        {"F64", 1, 8, false},        {"IQ1_M", 256, 56, false},
      {"BF16", 1, 2, true},        {nullptr, 0, 0, false},      {nullptr, 0, 0, false},
      {nullptr, 0, 0, false},      {"TQ1_0", 256, 54, false},   {"TQ2_0", 256, 66, false},
      {nullptr, 0, 0, false},      {nullptr, 0, 0, false},      {nullptr, 0, 0, false},
      {"MXFP4", 32, 17, false},    {nullptr, 0, 0, false},      {nullptr, 0, 0, false},
  }};
  if (type >= kTable.size() || kTable[type].name == nullptr) return nullptr;
  return &kTable[type];
}

// Bounds-checked little-endian reads over the header bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, uint64_t fileSize, std::string file)
      : m_bytes(bytes), m_fileSize(fileSize), m_file(std::move(file)) {}

  uint64_t pos() const { return m_pos; }
  // Bytes left in the file from here (not only in the buffer).
  uint64_t remainingInFile() const { return m_fileSize - m_pos; }
  // Bytes left in the buffer: what can be parsed before more must be read (bounds reserve()).
  uint64_t remainingInBuffer() const { return m_bytes.size() - std::min<uint64_t>(m_pos, m_bytes.size()); }
  const std::string& file() const { return m_file; }

  [[noreturn]] void fail(const std::string& where, const std::string& problem) const {
    throwBadInput(m_file, where + " (byte " + std::to_string(m_pos) + ")", problem);
  }

  // Checks that n more bytes exist: in the file (else BadInput), in the buffer (else NeedMore).
  void need(uint64_t n, const std::string& where) const {
    if (n > remainingInFile()) {
      fail(where, "truncated file: needs " + std::to_string(n) + " more bytes, the file has " +
                      std::to_string(remainingInFile()));
    }
    if (m_pos + n > m_bytes.size()) throw GgufNeedMoreBytes{m_pos + n};
  }

  template <typename T>
  T read(const std::string& where) {
    need(sizeof(T), where);
    T v;
    std::memcpy(&v, m_bytes.data() + m_pos, sizeof(T));
    m_pos += sizeof(T);
    return v;
  }

  std::string readString(const std::string& where, uint64_t maxBytes) {
    const auto n = read<uint64_t>(where);
    if (n > maxBytes) {
      fail(where, "string of " + std::to_string(n) + " bytes is longer than allowed (" +
                      std::to_string(maxBytes) + ")");
    }
    need(n, where);
    std::string s(reinterpret_cast<const char*>(m_bytes.data() + m_pos), static_cast<size_t>(n));
    m_pos += n;
    return s;
  }

  // Counts n more array values against kMaxArrayValues for the whole header.
  void chargeArrayValues(uint64_t n, const std::string& where) {
    if (n > kMaxArrayValues - m_arrayValues) {
      fail(where, "metadata arrays hold more than " + std::to_string(kMaxArrayValues) +
                      " values in all (real vocabularies hold about a million)");
    }
    m_arrayValues += n;
  }

 private:
  std::span<const uint8_t> m_bytes;
  uint64_t m_fileSize;
  std::string m_file;
  uint64_t m_pos = 0;
  uint64_t m_arrayValues = 0;
};

// Smallest encoded size of one value of a type (for count sanity checks before allocating).
uint64_t minEncodedSize(GgufValueType type) {
  switch (type) {
    case GgufValueType::UInt8:
    case GgufValueType::Int8:
    case GgufValueType::Bool:
      return 1;
    case GgufValueType::UInt16:
    case GgufValueType::Int16:
      return 2;
    case GgufValueType::UInt32:
    case GgufValueType::Int32:
    case GgufValueType::Float32:
      return 4;
    case GgufValueType::UInt64:
    case GgufValueType::Int64:
    case GgufValueType::Float64:
    case GgufValueType::String:  // its uint64 length
      return 8;
    case GgufValueType::Array:  // element type + count
      return 12;
  }
  return 1;
}

bool knownValueType(uint32_t t) {
  return t <= static_cast<uint32_t>(GgufValueType::Float64);
}

GgufValue readValue(Cursor& c, GgufValueType type, const std::string& where, int depth);

GgufArray readArray(Cursor& c, const std::string& where, int depth) {
  if (depth >= kMaxArrayDepth) c.fail(where, "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
  const auto elementType = c.read<uint32_t>(where + " array type");
  if (!knownValueType(elementType)) {
    c.fail(where, "unknown array element type " + std::to_string(elementType));
  }
  const auto count = c.read<uint64_t>(where + " array length");
  const auto type = static_cast<GgufValueType>(elementType);
  if (count > c.remainingInFile() / minEncodedSize(type)) {
    c.fail(where, "array of " + std::to_string(count) + " elements cannot fit in the file");
  }
  c.chargeArrayValues(count, where);
  GgufArray array;
  array.elementType = type;
  // Reserve only what the bytes at hand can hold: the rest may never be read.
  array.items.reserve(static_cast<size_t>(std::min(count, c.remainingInBuffer() / minEncodedSize(type))));
  for (uint64_t i = 0; i < count; ++i) array.items.push_back(readValue(c, type, where, depth + 1));
  return array;
}

GgufValue readValue(Cursor& c, GgufValueType type, const std::string& where, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufValueType::UInt8:
      v.value = uint64_t{c.read<uint8_t>(where)};
      break;
    case GgufValueType::Int8:
      v.value = int64_t{c.read<int8_t>(where)};
      break;
    case GgufValueType::UInt16:
      v.value = uint64_t{c.read<uint16_t>(where)};
      break;
    case GgufValueType::Int16:
      v.value = int64_t{c.read<int16_t>(where)};
      break;
    case GgufValueType::UInt32:
      v.value = uint64_t{c.read<uint32_t>(where)};
      break;
    case GgufValueType::Int32:
      v.value = int64_t{c.read<int32_t>(where)};
      break;
    case GgufValueType::UInt64:
      v.value = c.read<uint64_t>(where);
      break;
    case GgufValueType::Int64:
      v.value = c.read<int64_t>(where);
      break;
    case GgufValueType::Float32:
      v.value = double{c.read<float>(where)};
      break;
    case GgufValueType::Float64:
      v.value = c.read<double>(where);
      break;
    case GgufValueType::Bool: {
      const auto b = c.read<uint8_t>(where);
      if (b > 1) c.fail(where, "bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.value = b == 1;
      break;
    }
    case GgufValueType::String:
      v.value = c.readString(where, c.remainingInFile());
      break;
    case GgufValueType::Array:
      v.value = readArray(c, where, depth);
      break;
  }
  return v;
}

void readMetadata(Cursor& c, uint64_t count, GgufHeader& h) {
  // Each pair takes at least a key length (8), a type (4) and one byte of value.
  if (count > c.remainingInFile() / 13) {
    c.fail("header", "metadata count " + std::to_string(count) + " cannot fit in the file");
  }
  for (uint64_t i = 0; i < count; ++i) {
    const std::string key = c.readString("metadata key " + std::to_string(i), kMaxKeyBytes);
    const std::string where = "metadata " + quoteForMessage(key);
    const auto type = c.read<uint32_t>(where + " type");
    if (!knownValueType(type)) c.fail(where, "unknown value type " + std::to_string(type));
    GgufValue value = readValue(c, static_cast<GgufValueType>(type), where, 0);
    if (!h.metadata.emplace(key, std::move(value)).second) c.fail(where, "duplicate metadata key");
  }
}

uint64_t readAlignment(const GgufHeader& h, const Cursor& c) {
  const GgufValue* v = h.find("general.alignment");
  if (v == nullptr) return 32;
  const auto a = v->asInteger();
  const bool isUnsigned = v->type == GgufValueType::UInt32 || v->type == GgufValueType::UInt64 ||
                          v->type == GgufValueType::UInt16 || v->type == GgufValueType::UInt8;
  if (!isUnsigned || !a || *a <= 0 || (*a & (*a - 1)) != 0 || *a > (int64_t{1} << 20)) {
    c.fail("metadata 'general.alignment'", "must be an unsigned power of two up to 1 MiB");
  }
  return static_cast<uint64_t>(*a);
}

GgufTensorInfo readTensorInfo(Cursor& c, uint64_t index) {
  GgufTensorInfo t;
  t.name = c.readString("tensor " + std::to_string(index) + " name", kMaxNameBytes);
  const std::string where = "tensor '" + t.name + "'";
  const auto nDims = c.read<uint32_t>(where + " dimension count");
  if (nDims < 1 || nDims > kMaxDims) {
    c.fail(where,
           "has " + std::to_string(nDims) + " dimensions (1.." + std::to_string(kMaxDims) + " allowed)");
  }
  t.elements = 1;
  for (uint32_t d = 0; d < nDims; ++d) {
    const auto n = c.read<uint64_t>(where + " dimension");
    if (n == 0) c.fail(where, "dimension " + std::to_string(d) + " is 0");
    if (n > std::numeric_limits<uint64_t>::max() / t.elements) c.fail(where, "element count overflows");
    t.elements *= n;
    t.dims.push_back(n);
  }
  if (t.elements > (uint64_t{1} << 50)) c.fail(where, "absurd element count " + std::to_string(t.elements));
  t.type = c.read<uint32_t>(where + " type");
  const GgmlTypeInfo* info = ggmlTypeInfo(t.type);
  if (info == nullptr) c.fail(where, "unknown tensor type " + std::to_string(t.type));
  if (t.dims[0] % static_cast<uint64_t>(info->blockSize) != 0) {
    c.fail(where, "row length " + std::to_string(t.dims[0]) + " is not a multiple of the " + info->name +
                      " block size " + std::to_string(info->blockSize));
  }
  t.bytes = t.elements / static_cast<uint64_t>(info->blockSize) * static_cast<uint64_t>(info->typeSize);
  t.offset = c.read<uint64_t>(where + " offset");
  return t;
}

// Tensor data must be aligned, inside the file and not overlap.
void checkTensorPlacement(const GgufHeader& h, uint64_t fileSize, const std::string& file) {
  std::vector<const GgufTensorInfo*> byOffset;
  for (const auto& t : h.tensors) {
    const std::string where = "tensor '" + t.name + "'";
    if (t.offset % h.alignment != 0) {
      throwBadInput(file, where,
                    "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                        std::to_string(h.alignment));
    }
    const uint64_t room = fileSize - h.dataOffset;
    if (t.offset > room || t.bytes > room - t.offset) {
      throwBadInput(
          file, where,
          "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.bytes) +
              ") lies past the end of the file (truncated file, or a shape that disagrees with the data)");
    }
    byOffset.push_back(&t);
  }
  std::sort(byOffset.begin(), byOffset.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < byOffset.size(); ++i) {
    if (byOffset[i - 1]->offset + byOffset[i - 1]->bytes > byOffset[i]->offset) {
      throwBadInput(file, "tensor '" + byOffset[i]->name + "'",
                    "data overlaps that of tensor '" + byOffset[i - 1]->name + "'");
    }
  }
}

}  // namespace

std::optional<int64_t> GgufValue::asInteger() const {
  if (const auto* i = std::get_if<int64_t>(&value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::asNumber() const {
  if (const auto* d = std::get_if<double>(&value)) return *d;
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&value)) return static_cast<double>(*u);
  return std::nullopt;
}

const std::string* GgufValue::asString() const {
  return std::get_if<std::string>(&value);
}

const GgufArray* GgufValue::asArray() const {
  return std::get_if<GgufArray>(&value);
}

const GgmlTypeInfo* ggmlTypeInfo(uint32_t type) {
  return typeTable(type);
}

std::string ggmlTypeName(uint32_t type) {
  const GgmlTypeInfo* info = typeTable(type);
  return info != nullptr ? info->name : "type " + std::to_string(type);
}

const GgufValue* GgufHeader::find(const std::string& key) const {
  const auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufHeader::findTensor(const std::string& name) const {
  for (const auto& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

GgufHeader parseGgufHeader(std::span<const uint8_t> bytes, uint64_t fileSize, const std::string& file) {
  Cursor c(bytes.first(static_cast<size_t>(std::min<uint64_t>(bytes.size(), fileSize))), fileSize, file);
  if (fileSize < 4) c.fail("header", "not a GGUF file (shorter than its magic)");
  const auto magic = c.read<uint32_t>("magic");
  if (magic == 0x47475546u) c.fail("header", "big-endian GGUF files are not supported");
  if (magic != 0x46554747u) c.fail("header", "not a GGUF file (magic is not \"GGUF\")");
  GgufHeader h;
  h.version = c.read<uint32_t>("version");
  if (h.version == 0x02000000u || h.version == 0x03000000u) {
    c.fail("header", "big-endian GGUF files are not supported");
  }
  if (h.version != 2 && h.version != 3) {
    c.fail("header", "GGUF version " + std::to_string(h.version) + " is not supported (only 2 and 3)");
  }
  const auto tensorCount = c.read<uint64_t>("tensor count");
  const auto metadataCount = c.read<uint64_t>("metadata count");
  readMetadata(c, metadataCount, h);
  h.alignment = readAlignment(h, c);
  // Each tensor info takes at least a name length, one dimension, a type and an offset (28 bytes).
  if (tensorCount > c.remainingInFile() / 28) {
    c.fail("header", "tensor count " + std::to_string(tensorCount) + " cannot fit in the file");
  }
  if (tensorCount > kMaxTensors) {
    c.fail("header", "tensor count " + std::to_string(tensorCount) + " is more than " +
                         std::to_string(kMaxTensors) + " (real models have a few thousand)");
  }
  std::set<std::string> names;
  h.tensors.reserve(static_cast<size_t>(std::min(tensorCount, c.remainingInBuffer() / 28)));
  for (uint64_t i = 0; i < tensorCount; ++i) {
    GgufTensorInfo t = readTensorInfo(c, i);
    if (!names.insert(t.name).second) c.fail("tensor '" + t.name + "'", "duplicate tensor name");
    h.tensors.push_back(std::move(t));
  }
  const uint64_t end = c.pos();
  h.dataOffset = (end + h.alignment - 1) / h.alignment * h.alignment;
  if (!h.tensors.empty() && h.dataOffset > fileSize) {
    throwBadInput(file, "data section", "truncated file: the tensor data would start past its end");
  }
  checkTensorPlacement(h, fileSize, file);
  return h;
}

GgufHeader readGgufHeader(std::span<const uint8_t> bytes, const std::string& file) {
  return parseGgufHeader(bytes, bytes.size(), file);
}

namespace {

std::string errnoText() {
  return std::strerror(errno);
}

// Reads exactly n bytes at offset; false on a short read or an error.
bool readAt(int fd, uint64_t offset, uint8_t* out, uint64_t n) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, out, static_cast<size_t>(std::min<uint64_t>(n, uint64_t{1} << 30)),
                                static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->m_path = path;
  f->m_fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->m_fd < 0) throwBadInput(path, "", "cannot open the model file: " + errnoText());
  struct stat st {};
  if (::fstat(f->m_fd, &st) != 0 || !S_ISREG(st.st_mode)) throwBadInput(path, "", "not a regular file");
  f->m_fileSize = static_cast<uint64_t>(st.st_size);
  // Read a prefix and grow it until the header fits (the header of a large vocabulary is MBs).
  uint64_t want = std::min<uint64_t>(f->m_fileSize, uint64_t{4} << 20);
  for (;;) {
    std::vector<uint8_t> prefix(static_cast<size_t>(want));
    if (!readAt(f->m_fd, 0, prefix.data(), want)) throwBadInput(path, "", "read error: " + errnoText());
    try {
      f->m_header = parseGgufHeader(prefix, f->m_fileSize, path);
      return f;
    } catch (const GgufNeedMoreBytes& more) {
      if (more.atLeast > kMaxHeaderBytes) {
        throwBadInput(path, "header", "header larger than " + std::to_string(kMaxHeaderBytes >> 20) + " MiB");
      }
      want = std::min<uint64_t>(f->m_fileSize, std::max(want * 2, more.atLeast));
    }
  }
}

GgufFile::~GgufFile() {
  if (m_fd >= 0) ::close(m_fd);
}

void GgufFile::readFloat32(const GgufTensorInfo& tensor, float* out) const {
  const std::string where = "tensor '" + tensor.name + "'";
  const GgmlTypeInfo* info = ggmlTypeInfo(tensor.type);
  if (info == nullptr || !info->dequantizable) {
    throwBadInput(m_path, where,
                  "tensor type " + ggmlTypeName(tensor.type) +
                      " is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K are)");
  }
  // Dequantize in bounded pieces of whole blocks, so that the raw bytes never need a second
  // copy of a large tensor in memory.
  const uint64_t blockBytes = static_cast<uint64_t>(info->typeSize);
  const uint64_t blocks = tensor.bytes / blockBytes;
  const uint64_t blocksPerPiece = std::max<uint64_t>(1, (uint64_t{8} << 20) / blockBytes);
  std::vector<uint8_t> raw(static_cast<size_t>(std::min(blocks, blocksPerPiece) * blockBytes));
  for (uint64_t b = 0; b < blocks; b += blocksPerPiece) {
    const uint64_t n = std::min(blocksPerPiece, blocks - b);
    if (!readAt(m_fd, m_header.dataOffset + tensor.offset + b * blockBytes, raw.data(), n * blockBytes)) {
      throwBadInput(m_path, where, "read error or truncated data");
    }
    float* dst = out + b * static_cast<uint64_t>(info->blockSize);
    const auto count = static_cast<int64_t>(n * static_cast<uint64_t>(info->blockSize));
    dequantizeGgml(static_cast<GgmlType>(tensor.type), raw.data(), count, dst);
    for (int64_t i = 0; i < count; ++i) {
      if (!std::isfinite(dst[i])) {
        throwBadInput(
            m_path, where,
            "value " + std::to_string(b * static_cast<uint64_t>(info->blockSize) + static_cast<uint64_t>(i)) +
                " is not finite");
      }
    }
  }
}

}  // namespace kvq
