// A settings struct as a table of fields: {name, member, doc, valid range}.
//
// The table is the one list of a struct's settings. Everything that names or checks
// them is derived from it through the type-free FieldSpec/FieldValue pairs below:
// the codebook file's HDF5 attributes (io/), the JSON config, the GUI's QSettings
// keys (ui/), the CLI's flags and --help (app/cli), and the validation messages. So
// a new setting is a struct member plus one makeField line, and nothing else.
//
// Tables are templates over the struct, so a test can extend a struct with a field
// and check that it reaches every consumer (tests/ui/test_config_fields.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "kvq/base/enum_names.h"
#include "kvq/base/error.h"

namespace kvq {

// How a field is stored and shown. The FieldValue alternative of each type:
// Flag bool, Int and Int64 int64_t (Int fits 32 bits), Unsigned uint64_t, Real
// double, Text and Choice std::string (Choice: an enum by its name).
enum class FieldType { Flag, Int, Int64, Unsigned, Real, Text, Choice };
using FieldValue = std::variant<bool, int64_t, uint64_t, double, std::string>;

// Valid values of a numeric field; absent bounds are open. Reals must be finite.
struct FieldRange {
  std::optional<double> min, max;
  bool maxExclusive = false;  // [min, max) instead of [min, max]
  bool minExclusive = false;  // (min, ...

  static FieldRange atLeast(double lo) { return {lo, std::nullopt, false, false}; }
  static FieldRange above(double lo) { return {lo, std::nullopt, false, true}; }
  static FieldRange closed(double lo, double hi) { return {lo, hi, false, false}; }
  static FieldRange halfOpen(double lo, double hi) { return {lo, hi, true, false}; }
};

// What every consumer knows of a field, without the struct.
struct FieldSpec {
  std::string name;  // snake_case: attribute, JSON key, QSettings key; the CLI derives its flag
  std::string doc;   // one line, for --help and tooltips
  FieldType type = FieldType::Int;
  FieldRange range;                   // numeric fields
  std::vector<std::string> choices;   // Choice: the names, in table order
  std::vector<std::string> accepted;  // Choice: every spelling parsing accepts (names + aliases)
  // A field added after files were written: a stored file without it means the struct's default
  // (the setting off), so older files stay readable. Otherwise the attribute is required.
  bool optionalInFiles = false;
};

// A field of Config: its spec and how to read and write the member.
template <class Config>
struct Field {
  FieldSpec spec;
  std::function<FieldValue(const Config&)> get;
  // Throws Error(BadInput, "", spec.name, problem) when value does not fit the member
  // (an unknown choice, an integer beyond 32 bits); Internal for a wrong alternative.
  std::function<void(Config&, const FieldValue&)> set;
};
template <class Config>
using FieldTable = std::vector<Field<Config>>;

// The value as one line of text ("32", "0.99", "strided", "true").
std::string fieldValueText(const FieldValue& value);
// The range in words ("at least 1", "in [0, 1)"); "" when the field has none.
std::string rangeText(const FieldSpec& spec);
// Throws Error(BadInput, "", spec.name, "must be ...") when value is outside the
// spec's range (or, for a Real, not finite).
void validateFieldValue(const FieldSpec& spec, const FieldValue& value);
// The fields as one JSON object {name: value}, keys sorted (nlohmann's order).
std::string fieldsToJson(const std::vector<FieldSpec>& specs, const std::vector<FieldValue>& values);
// Throws Error(Internal, spec.name) unless value holds spec.type's alternative (a
// consumer that converted a stored value to the wrong type is a bug, not bad input).
void checkFieldValueType(const FieldSpec& spec, const FieldValue& value);

namespace detail {

template <class T>
constexpr FieldType fieldTypeOf() {
  if constexpr (std::is_same_v<T, bool>) return FieldType::Flag;
  if constexpr (std::is_same_v<T, int>) return FieldType::Int;
  if constexpr (std::is_same_v<T, int64_t>) return FieldType::Int64;
  if constexpr (std::is_same_v<T, uint64_t>) return FieldType::Unsigned;
  if constexpr (std::is_same_v<T, double>) return FieldType::Real;
  if constexpr (std::is_same_v<T, std::string>) return FieldType::Text;
  if constexpr (std::is_enum_v<T>) return FieldType::Choice;
}

// Narrows a stored integer to int; BadInput naming the field when it does not fit
// (a hostile 2^33 in a file must not wrap to 0).
int narrowToInt(const std::string& field, int64_t value);

}  // namespace detail

// The field `name` of Config stored in `member` (a member of Config or of a base of it).
template <class Config, class Owner, class T>
Field<Config> makeField(const std::string& name, T Owner::*member, const std::string& doc,
                        FieldRange range = {}) {
  static_assert(std::is_base_of_v<Owner, Config>, "member must belong to Config");
  Field<Config> f;
  f.spec.name = name;
  f.spec.doc = doc;
  f.spec.type = detail::fieldTypeOf<T>();
  f.spec.range = range;
  if constexpr (std::is_enum_v<T>) {
    f.spec.choices = namesOf<T>();
    f.spec.accepted = acceptedNamesOf<T>();
  }
  const FieldSpec spec = f.spec;
  f.get = [member](const Config& c) -> FieldValue {
    const T& v = c.*member;
    if constexpr (std::is_enum_v<T>) {
      return std::string(nameOf(v));
    } else if constexpr (std::is_same_v<T, int>) {
      return static_cast<int64_t>(v);
    } else {
      return v;
    }
  };
  f.set = [member, spec](Config& c, const FieldValue& value) {
    checkFieldValueType(spec, value);
    T& v = c.*member;
    if constexpr (std::is_enum_v<T>) {
      v = parseName<T>(std::get<std::string>(value), spec.name);
    } else if constexpr (std::is_same_v<T, int>) {
      v = detail::narrowToInt(spec.name, std::get<int64_t>(value));
    } else {
      v = std::get<T>(value);
    }
  };
  return f;
}

// f, marked optional in stored files (FieldSpec::optionalInFiles).
template <class Config>
Field<Config> optionalInFiles(Field<Config> f) {
  f.spec.optionalInFiles = true;
  return f;
}

template <class Config>
std::vector<FieldSpec> specsOf(const FieldTable<Config>& table) {
  std::vector<FieldSpec> specs;
  for (const Field<Config>& f : table) specs.push_back(f.spec);
  return specs;
}

// The values of config, in table order.
template <class Config>
std::vector<FieldValue> valuesOf(const FieldTable<Config>& table, const Config& config) {
  std::vector<FieldValue> values;
  for (const Field<Config>& f : table) values.push_back(f.get(config));
  return values;
}

// Sets the fields whose value is given (values in table order; nullopt keeps the field).
template <class Config>
void assignValues(const FieldTable<Config>& table, const std::vector<std::optional<FieldValue>>& values,
                  Config& config) {
  for (size_t i = 0; i < table.size() && i < values.size(); ++i) {
    if (values[i]) table[i].set(config, *values[i]);
  }
}

// Checks every field against its range (table order: the first bad field is named).
template <class Config>
void validateFields(const FieldTable<Config>& table, const Config& config) {
  for (const Field<Config>& f : table) validateFieldValue(f.spec, f.get(config));
}

template <class Config>
std::string fieldsToJson(const FieldTable<Config>& table, const Config& config) {
  return fieldsToJson(specsOf(table), valuesOf(table, config));
}

}  // namespace kvq
