// GGUF v2/v3 model files: a strict reader of our own (docs/model.md).
//
// Layout (little-endian): magic "GGUF", uint32 version, uint64 tensor count, uint64 metadata
// count, the metadata key/value pairs, the tensor infos (name, dims, ggml type, offset), padding
// to `general.alignment` (default 32), then the tensor data, each tensor at its offset (a
// multiple of the alignment) from the data start. Dimension 0 is the fastest-varying one: a
// weight matrix [out, in] in PyTorch is stored with dims {in, out}.
//
// The parser refuses, with Error(BadInput) naming the file, the place (metadata key or tensor
// name, byte offset) and the problem, anything it does not understand: a wrong magic, versions
// other than 2 and 3, big-endian files, truncation anywhere, unknown value or tensor types,
// counts and sizes that cannot fit in the file (checked before anything is allocated), more
// than 65536 tensors or 8388608 metadata array values in all (so a sparse file cannot make it
// allocate gigabytes), duplicate keys or tensor names, a bad alignment, misaligned,
// overlapping or out-of-file tensor data. It never reads outside the bytes it was given.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace kvq {

enum class GgufValueType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufValueType elementType = GgufValueType::UInt8;
  std::vector<GgufValue> items;
};

// One metadata value. Signed integers are held as int64_t, unsigned ones as uint64_t, floats as
// double, then bool, string, array; `type` keeps the exact stored type.
struct GgufValue {
  GgufValueType type = GgufValueType::UInt32;
  std::variant<int64_t, uint64_t, double, bool, std::string, GgufArray> value;

  // The value as an integer when it is one (any integer type) and fits int64_t.
  std::optional<int64_t> asInteger() const;
  // The value as a double when it is numeric (integer or float).
  std::optional<double> asNumber() const;
  const std::string* asString() const;
  const GgufArray* asArray() const;
};

// ggml tensor types (the numbering of ggml.h). Only F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K,
// Q5_K and Q6_K are dequantized; the others are known by size so that a file holding them
// parses, and refused when one of their tensors is read.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct GgmlTypeInfo {
  const char* name;  // "Q4_K"
  int blockSize;     // elements per block
  int typeSize;      // bytes per block
  bool dequantizable;
};
// The type's block layout, or nullptr for a number ggml does not define.
const GgmlTypeInfo* ggmlTypeInfo(uint32_t type);
// "Q4_K", or "type 99" for an unknown number.
std::string ggmlTypeName(uint32_t type);

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ne[0] (fastest) first; 1..4 entries, each >= 1
  uint32_t type = 0;           // a GgmlType number with a known layout
  uint64_t offset = 0;         // from the start of the data section
  uint64_t elements = 0;       // product of dims
  uint64_t bytes = 0;          // elements / blockSize * typeSize
};

struct GgufHeader {
  uint32_t version = 0;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensorInfo> tensors;  // in file order
  uint64_t alignment = 32;
  uint64_t dataOffset = 0;  // absolute offset of the data section

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* findTensor(const std::string& name) const;
};

// Parses a GGUF header from the first bytes of a file (the fuzzing entry point).
//   bytes:    the file's first bytes (all of them when bytes.size() == fileSize)
//   fileSize: the whole file's size; tensor data must lie within it
//   file:     the name used in error messages
// Throws Error(BadInput) on any problem. When the header continues past `bytes` but within
// fileSize, throws GgufNeedMoreBytes (callers that hold only a prefix read more and retry).
GgufHeader parseGgufHeader(std::span<const uint8_t> bytes, uint64_t fileSize, const std::string& file);
// The same for a complete file held in memory (fileSize = bytes.size()).
GgufHeader readGgufHeader(std::span<const uint8_t> bytes, const std::string& file = "<memory>");

struct GgufNeedMoreBytes {
  uint64_t atLeast;  // the prefix must hold at least this many bytes
};

// An open GGUF file: the parsed header and access to the tensor data.
class GgufFile {
 public:
  // Opens and parses `path`. Throws Error(BadInput) naming the file.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return m_path; }
  uint64_t fileSize() const { return m_fileSize; }
  const GgufHeader& header() const { return m_header; }

  // The tensor's values dequantized to float32, in storage order (dims[0] fastest).
  //   out: [tensor.elements] float32
  // Throws Error(BadInput) naming the file and tensor for a type that cannot be dequantized, a
  // read error, or a NaN/Inf among the values.
  void readFloat32(const GgufTensorInfo& tensor, float* out) const;

 private:
  GgufFile() = default;
  std::string m_path;
  int m_fd = -1;
  uint64_t m_fileSize = 0;
  GgufHeader m_header;
};

}  // namespace kvq
