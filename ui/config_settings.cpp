#include "config_settings.h"

#include <QCoreApplication>
#include <QHash>
#include <QRegularExpression>

namespace kvq::ui {
namespace {

QVariant toVariant(const kvq::FieldValue& value) {
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<qlonglong>(*i);
  if (const auto* u = std::get_if<uint64_t>(&value)) return static_cast<qulonglong>(*u);
  if (const auto* d = std::get_if<double>(&value)) return *d;
  return QString::fromStdString(std::get<std::string>(value));
}

std::optional<kvq::FieldValue> fromVariant(const kvq::FieldSpec& spec, const QVariant& v) {
  bool ok = true;
  switch (spec.type) {
    case kvq::FieldType::Flag:
      return v.toBool();
    case kvq::FieldType::Int:
    case kvq::FieldType::Int64: {
      const qlonglong n = v.toLongLong(&ok);
      if (ok) return static_cast<int64_t>(n);
      break;
    }
    case kvq::FieldType::Unsigned: {
      const qulonglong n = v.toULongLong(&ok);
      if (ok) return static_cast<uint64_t>(n);
      break;
    }
    case kvq::FieldType::Real: {
      const double d = v.toDouble(&ok);
      if (ok) return d;
      break;
    }
    case kvq::FieldType::Text:
    case kvq::FieldType::Choice:
      return v.toString().toStdString();
  }
  return std::nullopt;
}

}  // namespace

void saveFields(QSettings& settings, const std::vector<kvq::FieldSpec>& specs,
                const std::vector<kvq::FieldValue>& values) {
  for (size_t i = 0; i < specs.size() && i < values.size(); ++i) {
    settings.setValue(QString::fromStdString(specs[i].name), toVariant(values[i]));
  }
}

std::vector<std::optional<kvq::FieldValue>> loadFields(const QSettings& settings,
                                                       const std::vector<kvq::FieldSpec>& specs) {
  std::vector<std::optional<kvq::FieldValue>> values;
  for (const kvq::FieldSpec& spec : specs) {
    const QString key = QString::fromStdString(spec.name);
    values.push_back(settings.contains(key) ? fromVariant(spec, settings.value(key)) : std::nullopt);
  }
  return values;
}

QString settingLabel(const QString& field) {
  // The labels of SettingsPanel's rows (settings_panel.cpp builds its form from these).
  static const QHash<QString, const char*> labels = {
      {QStringLiteral("preset"), QT_TRANSLATE_NOOP("SettingsPanel", "Preset")},
      {QStringLiteral("codebook_size"), QT_TRANSLATE_NOOP("SettingsPanel", "Codebook size")},
      {QStringLiteral("depth"), QT_TRANSLATE_NOOP("SettingsPanel", "Depth")},
      {QStringLiteral("group_size"), QT_TRANSLATE_NOOP("SettingsPanel", "Group size")},
      {QStringLiteral("key_grouping"), QT_TRANSLATE_NOOP("SettingsPanel", "Key grouping")},
      {QStringLiteral("value_grouping"), QT_TRANSLATE_NOOP("SettingsPanel", "Value grouping")},
      {QStringLiteral("train_sample"), QT_TRANSLATE_NOOP("SettingsPanel", "Sample size")},
      {QStringLiteral("kmeans_iterations"), QT_TRANSLATE_NOOP("SettingsPanel", "k-means iterations")},
      {QStringLiteral("ema_steps"), QT_TRANSLATE_NOOP("SettingsPanel", "EMA steps")},
      {QStringLiteral("beam_width"), QT_TRANSLATE_NOOP("SettingsPanel", "Beam width")},
      {QStringLiteral("center_channels"), QT_TRANSLATE_NOOP("SettingsPanel", "Centre channels")},
      {QStringLiteral("query_aware"), QT_TRANSLATE_NOOP("SettingsPanel", "Query-aware keys")},
      {QStringLiteral("held_out_fraction"), QT_TRANSLATE_NOOP("SettingsPanel", "Held-out fraction")},
      {QStringLiteral("seed"), QT_TRANSLATE_NOOP("SettingsPanel", "Seed")},
      {QStringLiteral("layers"), QT_TRANSLATE_NOOP("SettingsPanel", "Layers")},
      {QStringLiteral("backend"), QT_TRANSLATE_NOOP("SettingsPanel", "Backend")},
  };
  const auto it = labels.constFind(field);
  return it == labels.constEnd() ? field : QCoreApplication::translate("SettingsPanel", it.value());
}

QString errorText(const kvq::Error& error) {
  static const QRegularExpression fieldName(QStringLiteral("^[a-z][a-z0-9_]*$"));
  const QString where = QString::fromStdString(error.where());
  if (!fieldName.match(where).hasMatch()) return QString::fromStdString(error.what());
  QString text;
  if (!error.file().empty()) text += QString::fromStdString(error.file()) + QStringLiteral(": ");
  return text + settingLabel(where) + QStringLiteral(": ") + QString::fromStdString(error.problem());
}

}  // namespace kvq::ui
