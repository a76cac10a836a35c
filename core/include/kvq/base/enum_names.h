// Names of enumerations as files, reports, options and settings spell them. Each
// enum has one table, next to its declaration (enumNames<E>(), specialised in the
// enum's source); its name lookup and its parser are the two templates below, so a
// name is written once and parsed the same way everywhere.
#pragma once

#include <string>
#include <vector>

namespace kvq {

// One spelling of an enum value. A table lists each value's name first; a later
// entry of the same value is an alias that parsing accepts (e.g. "non-contiguous").
template <class E>
struct EnumName {
  E value;
  const char* name;
};

// The table of E; specialised next to each enum (Kind, DType, Grouping, KMeansInit, cpu::Isa). A
// vector, not std::span: CUDA sources include these headers as C++17.
template <class E>
const std::vector<EnumName<E>>& enumNames();

// "a, b or c".
std::string joinChoices(const std::vector<std::string>& names);

// Throws Error(BadInput, "", field, "unknown <field> '<text>' (expected a, b or c)").
[[noreturn]] void throwUnknownName(const std::string& field, const std::string& text,
                                   const std::vector<std::string>& expected);

// The name of value ("" for a value missing from the table).
template <class E>
const char* nameOf(E value) {
  for (const EnumName<E>& n : enumNames<E>()) {
    if (n.value == value) return n.name;
  }
  return "";
}

// Every value's name, without aliases, in table order.
template <class E>
std::vector<std::string> namesOf() {
  std::vector<std::string> names;
  const std::vector<EnumName<E>>& table = enumNames<E>();
  for (size_t i = 0; i < table.size(); ++i) {
    bool first = true;
    for (size_t j = 0; j < i; ++j) first = first && table[j].value != table[i].value;
    if (first) names.emplace_back(table[i].name);
  }
  return names;
}

// Every spelling parsing accepts (names and aliases).
template <class E>
std::vector<std::string> acceptedNamesOf() {
  std::vector<std::string> names;
  for (const EnumName<E>& n : enumNames<E>()) names.emplace_back(n.name);
  return names;
}

// The value spelled text; BadInput naming field otherwise.
template <class E>
E parseName(const std::string& text, const std::string& field) {
  for (const EnumName<E>& n : enumNames<E>()) {
    if (text == n.name) return n.value;
  }
  throwUnknownName(field, text, namesOf<E>());
}

}  // namespace kvq
