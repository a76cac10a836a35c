#include "io/config_attrs.h"

namespace kvq {

void writeFieldAttrs(hid_t obj, const std::vector<FieldSpec>& specs, const std::vector<FieldValue>& values) {
  for (size_t i = 0; i < specs.size() && i < values.size(); ++i) {
    const std::string& name = specs[i].name;
    const FieldValue& v = values[i];
    if (const auto* b = std::get_if<bool>(&v)) {
      h5::writeAttr(obj, name, static_cast<int64_t>(*b ? 1 : 0));
    } else if (const auto* n = std::get_if<int64_t>(&v)) {
      h5::writeAttr(obj, name, *n);
    } else if (const auto* u = std::get_if<uint64_t>(&v)) {
      h5::writeAttr(obj, name, static_cast<int64_t>(*u));  // the bits; read back by the same cast
    } else if (const auto* d = std::get_if<double>(&v)) {
      h5::writeAttr(obj, name, *d);
    } else {
      h5::writeAttr(obj, name, std::get<std::string>(v));
    }
  }
}

std::vector<std::optional<FieldValue>> readFieldAttrs(const h5::Reader& reader, hid_t obj,
                                                      const std::vector<FieldSpec>& specs) {
  std::vector<std::optional<FieldValue>> values;
  for (const FieldSpec& spec : specs) {
    const std::string& name = spec.name;
    if (spec.optionalInFiles && !reader.hasAttr(obj, name)) {
      values.emplace_back(std::nullopt);  // a file from before the field: its default
      continue;
    }
    switch (spec.type) {
      case FieldType::Flag:
        values.emplace_back(reader.intAttr(obj, name) != 0);
        break;
      case FieldType::Int:
      case FieldType::Int64:
        values.emplace_back(reader.intAttr(obj, name));
        break;
      case FieldType::Unsigned:
        values.emplace_back(static_cast<uint64_t>(reader.intAttr(obj, name)));
        break;
      case FieldType::Real:
        values.emplace_back(reader.doubleAttr(obj, name));
        break;
      case FieldType::Text:
      case FieldType::Choice:
        values.emplace_back(reader.stringAttr(obj, name));
        break;
    }
  }
  return values;
}

void rethrowAsAttribute(const std::string& file, const Error& error) {
  throwBadInput(file, "/ " + error.where(), error.problem());
}

}  // namespace kvq
