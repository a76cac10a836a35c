#include "kvq/base/enum_names.h"

#include "kvq/base/error.h"

namespace kvq {

std::string joinChoices(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += names[i];
  }
  return text;
}

void throwUnknownName(const std::string& field, const std::string& text,
                      const std::vector<std::string>& expected) {
  throwBadInput("", field, "unknown " + field + " '" + text + "' (expected " + joinChoices(expected) + ")");
}

}  // namespace kvq
