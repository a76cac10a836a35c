// Plain data types of a KV dump (format v1, see docs/dump-format.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvq/base/enum_names.h"

namespace kvq {

enum class Kind { Keys, Values, Queries };
enum class DType { Float16, BFloat16, Float32 };

template <>
const std::vector<EnumName<Kind>>& enumNames<Kind>();  // "keys", "values", "queries"
const char* kindName(Kind kind);
Kind parseKind(const std::string& name, const std::string& field = "kind");  // throws BadInput naming field
template <>
const std::vector<EnumName<DType>>& enumNames<DType>();  // "float16", "bfloat16", "float32"
const char* dtypeName(DType dtype);

// Everything the root attributes and dataset shapes of a validated dump say.
struct DumpInfo {
  std::string path;
  int formatVersion = 1;
  std::string model;
  int numLayers = 0;    // layers of the model (the file may hold a subset)
  int numKvHeads = 0;   // H_kv
  int headDim = 0;      // D
  int numQHeads = 0;    // H_q; 0 when absent
  std::string keyRope;  // "pre" or "post"
  std::optional<double> ropeTheta;
  std::optional<int> ropeDim;
  std::string ropeLayout = "half";       // "half" (channel i pairs with i + rope_dim/2) or "interleaved"
  std::vector<double> ropeInvFreq;       // [rope_dim/2] from /rope_inv_freq; empty when absent
  std::optional<double> attentionScale;  // softmax scale when it is not 1/sqrt(D)
  std::string source;
  int64_t tokens = 0;       // T, the same for every layer, keys and values
  std::vector<int> layers;  // layer indices present, ascending
  DType dtype = DType::Float32;
  bool hasQueries = false;              // every present layer has /queries
  int64_t queryTokens = 0;              // rows of every queries dataset: T, or |queryPositions|
  std::vector<int64_t> queryPositions;  // /query_positions: token of each query row; empty: row t = token t
  bool hasTokenIds = false;             // /tokens present
  std::vector<int64_t> sequenceStarts;  // empty when absent
};

// Field by field (written out: the CUDA sources that include this are C++17).
bool operator==(const DumpInfo& a, const DumpInfo& b);
inline bool operator!=(const DumpInfo& a, const DumpInfo& b) {
  return !(a == b);
}

// A block of activations: data is [tokens, heads, dim] row-major float32.
struct Slab {
  int64_t tokenBegin = 0;  // first token of the block in the dump
  int64_t tokens = 0;
  int heads = 0;
  int dim = 0;
  std::vector<float> data;

  float at(int64_t t, int h, int c) const { return data[static_cast<size_t>((t * heads + h) * dim + c)]; }
  float* vector(int64_t t, int h) { return data.data() + (t * heads + h) * dim; }
  const float* vector(int64_t t, int h) const { return data.data() + (t * heads + h) * dim; }
};

}  // namespace kvq
