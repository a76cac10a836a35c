// The CLI's terms for core's settings. A settings table (kvq/base/field_table.h)
// becomes one option per field — the flag is the field's name with dashes
// (group_size → --group-size), its --help the field's doc and range — and a core
// error naming a field is shown with that flag ("--group-size: must be at least 1").
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/field_table.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace kvq::cli {

// The flag of a field: "--" + the name with '-' for '_', except the two shorter
// flags kvq has always had (beam_width → --beam, held_out_fraction → --held-out).
std::string flagForField(const std::string& field);

// One option per field of a table, and what the command line gave.
class ConfigFlags {
 public:
  ConfigFlags();
  ~ConfigFlags();
  ConfigFlags(const ConfigFlags&) = delete;
  ConfigFlags& operator=(const ConfigFlags&) = delete;

  // Adds an option for every spec (only those named in `only` when it is not empty).
  void add(CLI::App* cmd, const std::vector<FieldSpec>& specs, const std::vector<std::string>& only = {});
  // What was given on the command line for each spec passed to add(), in that order
  // (nullopt: not given, or not added).
  std::vector<std::optional<FieldValue>> given(const std::vector<FieldSpec>& specs) const;
  std::optional<FieldValue> given(const std::string& field) const;

 private:
  struct Slot;
  std::vector<std::unique_ptr<Slot>> m_slots;  // stable addresses: CLI11 writes into them
};

// The --help line of a field: its doc, its range and its choices.
std::string flagHelp(const FieldSpec& spec);

// e.what() with a field name in "where" shown as its flag when cmd has that option
// (the place in a file, "/layers/0/keys", is left as it is).
std::string presentError(const Error& e, const CLI::App* cmd);

}  // namespace kvq::cli
