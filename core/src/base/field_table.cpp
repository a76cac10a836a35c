#include "kvq/base/field_table.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace kvq {
namespace {

// A bound as written in a message: integers without a fraction ("16777216", not "1.67772e+07").
std::string boundText(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

// The value as a double for the range check (Flag, Text and Choice have no range).
std::optional<double> numeric(const FieldValue& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  if (const auto* u = std::get_if<uint64_t>(&value)) return static_cast<double>(*u);
  if (const auto* d = std::get_if<double>(&value)) return *d;
  return std::nullopt;
}

size_t alternativeOf(FieldType type) {
  switch (type) {
    case FieldType::Flag:
      return 0;
    case FieldType::Int:
    case FieldType::Int64:
      return 1;
    case FieldType::Unsigned:
      return 2;
    case FieldType::Real:
      return 3;
    case FieldType::Text:
    case FieldType::Choice:
      break;
  }
  return 4;
}

}  // namespace

namespace detail {

int narrowToInt(const std::string& field, int64_t value) {
  if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
    throwBadInput("", field, "value " + std::to_string(value) + " is out of range for a 32-bit integer");
  }
  return static_cast<int>(value);
}

}  // namespace detail

std::string fieldValueText(const FieldValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* u = std::get_if<uint64_t>(&value)) return std::to_string(*u);
  if (const auto* d = std::get_if<double>(&value)) return nlohmann::json(*d).dump();  // shortest round trip
  return std::get<std::string>(value);
}

std::string rangeText(const FieldSpec& spec) {
  const FieldRange& r = spec.range;
  if (r.min && r.max) {
    return std::string("in ") + (r.minExclusive ? "(" : "[") + boundText(*r.min) + ", " + boundText(*r.max) +
           (r.maxExclusive ? ")" : "]");
  }
  if (r.min) return (r.minExclusive ? "greater than " : "at least ") + boundText(*r.min);
  if (r.max) return (r.maxExclusive ? "less than " : "at most ") + boundText(*r.max);
  return "";
}

void checkFieldValueType(const FieldSpec& spec, const FieldValue& value) {
  if (value.index() != alternativeOf(spec.type)) {
    throwInternal(spec.name, "value of the wrong type for this field");
  }
}

void validateFieldValue(const FieldSpec& spec, const FieldValue& value) {
  const std::optional<double> v = numeric(value);
  if (!v) return;
  if (!std::isfinite(*v)) throwBadInput("", spec.name, "must be a finite number");
  const FieldRange& r = spec.range;
  const bool belowMin = r.min && (r.minExclusive ? !(*v > *r.min) : !(*v >= *r.min));
  const bool aboveMax = r.max && (r.maxExclusive ? !(*v < *r.max) : !(*v <= *r.max));
  if (belowMin || aboveMax) throwBadInput("", spec.name, "must be " + rangeText(spec));
}

std::string fieldsToJson(const std::vector<FieldSpec>& specs, const std::vector<FieldValue>& values) {
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < specs.size() && i < values.size(); ++i) {
    std::visit([&](const auto& v) { j[specs[i].name] = v; }, values[i]);
  }
  return j.dump();
}

}  // namespace kvq
