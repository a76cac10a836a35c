// A setting added to the field table reaches every consumer, with no other change.
//
// This test build extends RvqConfig with one field, `extra_knob` (an int64 in
// [1, 100]), and appends it to rvqConfigFields — exactly what adding a real setting
// does. The production code paths then carry it into all five places a setting
// appears: the codebook file's HDF5 attributes, the JSON config, the GUI's QSettings,
// the CLI's flags and --help, and the validation messages (named by the CLI as its
// flag and by the GUI by its label).
#include <CLI/CLI.hpp>

#include <QSettings>
#include <QTemporaryDir>
#include <QTest>

#include <nlohmann/json.hpp>

#include "config_flags.h"
#include "config_settings.h"
#include "io/config_attrs.h"
#include "kvq/base/file_util.h"
#include "kvq/rvq/rvq_config.h"

namespace {

struct ExtendedConfig : kvq::RvqConfig {
  int64_t extraKnob = 7;
};

kvq::FieldTable<ExtendedConfig> extendedTable() {
  kvq::FieldTable<ExtendedConfig> table = kvq::rvqConfigFields<ExtendedConfig>();
  table.push_back(kvq::makeField<ExtendedConfig>("extra_knob", &ExtendedConfig::extraKnob,
                                                 "Extra knob of the test build",
                                                 kvq::FieldRange::closed(1, 100)));
  return table;
}

ExtendedConfig configWithKnob(int64_t knob) {
  ExtendedConfig c;
  static_cast<kvq::RvqConfig&>(c) = kvq::presetConfig("fast");
  c.extraKnob = knob;
  return c;
}

}  // namespace

class ConfigFieldsTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { QVERIFY(m_dir.isValid()); }
  void hdf5Attributes();
  void json();
  void qsettings();
  void cliFlagsAndHelp();
  void validationMessages();

 private:
  QTemporaryDir m_dir;
};

void ConfigFieldsTest::hdf5Attributes() {
  const auto table = extendedTable();
  const std::string path = m_dir.filePath(QStringLiteral("extended.h5")).toStdString();
  const std::string temporary = kvq::temporaryPathFor(path);
  {
    kvq::h5::Writer writer(path, temporary);
    kvq::writeConfigAttrs(writer.root(), table, configWithKnob(42));
    writer.close();
  }
  kvq::commitTemporaryFile(temporary, path);
  const kvq::h5::Reader reader(path);
  QCOMPARE(reader.intAttr(reader.root(), "extra_knob"), int64_t{42});
  QCOMPARE(reader.intAttr(reader.root(), "codebook_size"), int64_t{2048});
  QCOMPARE(reader.stringAttr(reader.root(), "preset"), std::string("fast"));
  const ExtendedConfig back = kvq::readConfigAttrs(reader, reader.root(), table);
  QCOMPARE(back.extraKnob, int64_t{42});
  QCOMPARE(back.emaSteps, kvq::presetConfig("fast").emaSteps);
}

void ConfigFieldsTest::json() {
  const nlohmann::json j = nlohmann::json::parse(kvq::fieldsToJson(extendedTable(), configWithKnob(42)));
  QVERIFY(j.contains("extra_knob"));
  QVERIFY(j["extra_knob"].is_number_integer());
  QCOMPARE(j["extra_knob"].get<int64_t>(), int64_t{42});
  QCOMPARE(j["group_size"].get<int>(), 32);
  QCOMPARE(j.size(), extendedTable().size());
}

void ConfigFieldsTest::qsettings() {
  const auto table = extendedTable();
  const QString file = m_dir.filePath(QStringLiteral("settings.ini"));
  {
    QSettings settings(file, QSettings::IniFormat);
    settings.beginGroup(QStringLiteral("study"));
    kvq::ui::saveConfig(settings, table, configWithKnob(42));
  }
  QSettings settings(file, QSettings::IniFormat);
  settings.beginGroup(QStringLiteral("study"));
  QCOMPARE(settings.value(QStringLiteral("extra_knob")).toLongLong(), 42);
  const ExtendedConfig back = kvq::ui::loadConfig(settings, table, ExtendedConfig{});
  QCOMPARE(back.extraKnob, int64_t{42});
  QCOMPARE(back.preset, std::string("fast"));
}

void ConfigFieldsTest::cliFlagsAndHelp() {
  const auto table = extendedTable();
  CLI::App app{"test"};
  kvq::cli::ConfigFlags flags;
  flags.add(&app, kvq::specsOf(table));
  const std::string help = app.help();
  QVERIFY2(help.find("--extra-knob") != std::string::npos, help.c_str());
  QVERIFY2(help.find("Extra knob of the test build; in [1, 100]") != std::string::npos, help.c_str());
  app.parse("--extra-knob 5 --depth 3", false);
  ExtendedConfig c = configWithKnob(42);
  kvq::assignValues(table, flags.given(kvq::specsOf(table)), c);
  QCOMPARE(c.extraKnob, int64_t{5});
  QCOMPARE(c.depth, 3);
  QCOMPARE(c.codebookSize, 2048);  // not given: kept
}

void ConfigFieldsTest::validationMessages() {
  const auto table = extendedTable();
  ExtendedConfig c = configWithKnob(0);
  try {
    kvq::validateFields(table, c);
    QFAIL("a knob of 0 was accepted");
  } catch (const kvq::Error& e) {
    QCOMPARE(e.kind(), kvq::ErrorKind::BadInput);
    QCOMPARE(e.where(), std::string("extra_knob"));
    QCOMPARE(e.problem(), std::string("must be in [1, 100]"));
    CLI::App app{"test"};
    kvq::cli::ConfigFlags flags;
    flags.add(&app, kvq::specsOf(table));
    QCOMPARE(kvq::cli::presentError(e, &app), std::string("--extra-knob: must be in [1, 100]"));
    // No control sets it in this build: the GUI names the field itself.
    QCOMPARE(kvq::ui::errorText(e), QStringLiteral("extra_knob: must be in [1, 100]"));
  }
  c.extraKnob = 100;
  kvq::validateFields(table, c);  // the upper bound is inclusive
  // A field with a control is named by its label.
  QCOMPARE(kvq::ui::errorText(kvq::Error(kvq::ErrorKind::BadInput, "", "group_size", "must be at least 1")),
           QStringLiteral("Group size: must be at least 1"));
}

QTEST_GUILESS_MAIN(ConfigFieldsTest)
#include "test_config_fields.moc"
