#include "kvq/dump/dump.h"

namespace kvq {

const char* kindName(Kind kind) {
  switch (kind) {
    case Kind::Keys:
      return "keys";
    case Kind::Values:
      return "values";
    case Kind::Queries:
      return "queries";
  }
  return "unknown";
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
