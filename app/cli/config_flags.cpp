#include "config_flags.h"

#include <CLI/CLI.hpp>

#include <algorithm>

namespace kvq::cli {

struct ConfigFlags::Slot {
  FieldSpec spec;
  CLI::Option* option = nullptr;
  bool flag = false;
  int64_t integer = 0;
  uint64_t unsignedValue = 0;
  double real = 0.0;
  std::string text;

  FieldValue value() const {
    switch (spec.type) {
      case FieldType::Flag:
        return flag;
      case FieldType::Int:
      case FieldType::Int64:
        return integer;
      case FieldType::Unsigned:
        return unsignedValue;
      case FieldType::Real:
        return real;
      case FieldType::Text:
      case FieldType::Choice:
        break;
    }
    return text;
  }
};

std::string flagForField(const std::string& field) {
  if (field == "beam_width") return "--beam";
  if (field == "held_out_fraction") return "--held-out";
  std::string flag = "--" + field;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

std::string flagHelp(const FieldSpec& spec) {
  std::string help = spec.doc;
  const std::string range = rangeText(spec);
  if (!range.empty()) help += "; " + range;
  return help;
}

ConfigFlags::ConfigFlags() = default;
ConfigFlags::~ConfigFlags() = default;

void ConfigFlags::add(CLI::App* cmd, const std::vector<FieldSpec>& specs,
                      const std::vector<std::string>& only) {
  for (const FieldSpec& spec : specs) {
    if (!only.empty() && std::find(only.begin(), only.end(), spec.name) == only.end()) continue;
    auto slot = std::make_unique<Slot>();
    slot->spec = spec;
    const std::string flag = flagForField(spec.name);
    const std::string help = flagHelp(spec);
    switch (spec.type) {
      case FieldType::Flag:
        slot->option = cmd->add_flag(flag, slot->flag, help);
        break;
      case FieldType::Int:
      case FieldType::Int64:
        slot->option = cmd->add_option(flag, slot->integer, help);
        break;
      case FieldType::Unsigned:
        slot->option = cmd->add_option(flag, slot->unsignedValue, help);
        break;
      case FieldType::Real:
        slot->option = cmd->add_option(flag, slot->real, help);
        break;
      case FieldType::Text:
        slot->option = cmd->add_option(flag, slot->text, help);
        break;
      case FieldType::Choice:
        slot->option = cmd->add_option(flag, slot->text, help)->check(CLI::IsMember(spec.accepted));
        break;
    }
    m_slots.push_back(std::move(slot));
  }
}

std::optional<FieldValue> ConfigFlags::given(const std::string& field) const {
  for (const auto& slot : m_slots) {
    if (slot->spec.name == field && slot->option->count() > 0) return slot->value();
  }
  return std::nullopt;
}

std::vector<std::optional<FieldValue>> ConfigFlags::given(const std::vector<FieldSpec>& specs) const {
  std::vector<std::optional<FieldValue>> values;
  values.reserve(specs.size());
  for (const FieldSpec& spec : specs) values.push_back(given(spec.name));
  return values;
}

std::string presentError(const Error& e, const CLI::App* cmd) {
  const std::string& where = e.where();
  const bool isField = !where.empty() && std::all_of(where.begin(), where.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (!isField || cmd == nullptr) return e.what();
  const std::string flag = flagForField(where);
  if (cmd->get_option_no_throw(flag) == nullptr) return e.what();
  std::string message;
  if (!e.file().empty()) message += e.file() + ": ";
  return message + flag + ": " + e.problem();
}

}  // namespace kvq::cli
