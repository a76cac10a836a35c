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

const char* dtypeName(DType dtype) {
  switch (dtype) {
    case DType::Float16:
      return "float16";
    case DType::BFloat16:
      return "bfloat16";
    case DType::Float32:
      return "float32";
  }
  return "unknown";
}

}  // namespace kvq
