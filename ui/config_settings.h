// The GUI's terms for core's settings: a settings table (kvq/base/field_table.h) as
// QSettings values — one key per field, named as the field ("study/group_size") —
// and a core error naming a field shown with the label of the control that sets it
// ("Group size: must be at least 1").
#pragma once

#include <QSettings>
#include <QString>

#include <optional>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/field_table.h"

namespace kvq::ui {

void saveFields(QSettings& settings, const std::vector<kvq::FieldSpec>& specs,
                const std::vector<kvq::FieldValue>& values);
// The stored value of each spec, in spec order (nullopt: absent or not convertible).
std::vector<std::optional<kvq::FieldValue>> loadFields(const QSettings& settings,
                                                       const std::vector<kvq::FieldSpec>& specs);

template <class Config>
void saveConfig(QSettings& settings, const kvq::FieldTable<Config>& table, const Config& config) {
  saveFields(settings, kvq::specsOf(table), kvq::valuesOf(table, config));
}

// The stored fields over `config` (a field missing or not accepted, e.g. an unknown
// choice in a hand-edited file, keeps config's value).
template <class Config>
Config loadConfig(const QSettings& settings, const kvq::FieldTable<Config>& table, Config config) {
  const std::vector<std::optional<kvq::FieldValue>> values = loadFields(settings, kvq::specsOf(table));
  for (size_t i = 0; i < table.size() && i < values.size(); ++i) {
    if (!values[i]) continue;
    try {
      table[i].set(config, *values[i]);
    } catch (const kvq::Error&) {
      // Keep the value config had.
    }
  }
  return config;
}

// The label of the settings control of a field ("group_size" → "Group size"); the
// field's name for a setting without a control.
QString settingLabel(const QString& field);
// The error as the GUI words it: a field in where() is named by settingLabel.
QString errorText(const kvq::Error& error);

}  // namespace kvq::ui
