#include "kvq/dump/dump.h"

namespace kvq {

template <>
const std::vector<EnumName<Kind>>& enumNames<Kind>() {
  static const std::vector<EnumName<Kind>> names = {
      {Kind::Keys, "keys"}, {Kind::Values, "values"}, {Kind::Queries, "queries"}};
  return names;
}

const char* kindName(Kind kind) {
  return nameOf(kind);
}

Kind parseKind(const std::string& name, const std::string& field) {
  return parseName<Kind>(name, field);
}

template <>
const std::vector<EnumName<DType>>& enumNames<DType>() {
  static const std::vector<EnumName<DType>> names = {
      {DType::Float16, "float16"}, {DType::BFloat16, "bfloat16"}, {DType::Float32, "float32"}};
  return names;
}

const char* dtypeName(DType dtype) {
  const char* name = nameOf(dtype);
  return *name != '\0' ? name : "unknown";
}

bool operator==(const DumpInfo& a, const DumpInfo& b) {
  return a.path == b.path && a.formatVersion == b.formatVersion && a.model == b.model &&
         a.numLayers == b.numLayers && a.numKvHeads == b.numKvHeads && a.headDim == b.headDim &&
         a.numQHeads == b.numQHeads && a.keyRope == b.keyRope && a.ropeTheta == b.ropeTheta &&
         a.ropeDim == b.ropeDim && a.source == b.source && a.tokens == b.tokens && a.layers == b.layers &&
         a.dtype == b.dtype && a.hasQueries == b.hasQueries && a.hasTokenIds == b.hasTokenIds &&
         a.sequenceStarts == b.sequenceStarts;
}

}  // namespace kvq
