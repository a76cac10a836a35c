// A settings table (kvq/base/field_table.h) as HDF5 attributes of one object: the
// codebook file's root holds RvqConfig this way. Private to kvq_core (tests reach it
// through kvq_core_private). Integers are stored as int64 (a flag as 0/1, the
// unsigned seed by its bits), reals as float64, text and choices as UTF-8 strings.
#pragma once

#include <optional>
#include <vector>

#include "h5/h5_file.h"
#include "h5/hdf5_util.h"
#include "kvq/base/field_table.h"

namespace kvq {

void writeFieldAttrs(hid_t obj, const std::vector<FieldSpec>& specs, const std::vector<FieldValue>& values);

// Every field's attribute, in spec order; Error(BadInput) naming the file and the
// attribute when one is missing (nullopt for an absent optionalInFiles field) or not of its
// field's kind.
std::vector<std::optional<FieldValue>> readFieldAttrs(const h5::Reader& reader, hid_t obj,
                                                      const std::vector<FieldSpec>& specs);

// Rethrows a BadInput naming a field (from FieldTable::set or validation) as one naming
// the attribute of the file: "<file>: / <field>: <problem>".
[[noreturn]] void rethrowAsAttribute(const std::string& file, const Error& error);

template <class Config>
void writeConfigAttrs(hid_t obj, const FieldTable<Config>& table, const Config& config) {
  writeFieldAttrs(obj, specsOf(table), valuesOf(table, config));
}

// The config stored in obj's attributes, over `config`'s values (all are required, except
// fields optionalInFiles: absent ones keep their value in `config`).
template <class Config>
Config readConfigAttrs(const h5::Reader& reader, hid_t obj, const FieldTable<Config>& table,
                       Config config = {}) {
  const std::vector<std::optional<FieldValue>> values = readFieldAttrs(reader, obj, specsOf(table));
  try {
    assignValues(table, values, config);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) throw;
    rethrowAsAttribute(reader.path(), e);
  }
  return config;
}

}  // namespace kvq
