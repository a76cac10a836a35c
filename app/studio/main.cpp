// kvq-studio: the GUI's main(). Thin: application identity (for QSettings), the
// command line, then the main window from kvq_ui.
#include <QApplication>
#include <QCommandLineParser>

#include "default_sample.h"
#include "main_window.h"
#include "process_setup.h"
#include "screenshots.h"

int main(int argc, char** argv) {
  kvq::app::prepareProcess();  // first: HDF5 and the GPU engines
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("KVQ Studio"));
  QApplication::setOrganizationName(QStringLiteral("kvq"));
  QApplication::setApplicationVersion(QStringLiteral(KVQ_VERSION));

  QCommandLineParser parser;
  parser.setApplicationDescription(QStringLiteral("Residual vector quantization of LLM key/value caches"));
  parser.addHelpOption();
  parser.addVersionOption();
  parser.addPositionalArgument(QStringLiteral("dump"), QStringLiteral("KV dump (HDF5) to open"));
  const QCommandLineOption screenshots(
      QStringLiteral("screenshots"),
      QStringLiteral("Render the window and every chart to PNG in <dir>, then exit"), QStringLiteral("dir"));
  parser.addOption(screenshots);
  const QCommandLineOption compare(
      QStringLiteral("compare"),
      QStringLiteral(
          "With --screenshots: also evaluate this codebook file on the dump and render the comparison"),
      QStringLiteral("codebooks"));
  parser.addOption(compare);
  const QCommandLineOption modelResults(
      QStringLiteral("model-results"),
      QStringLiteral("With --screenshots: chart these kvq ppl --json reports (comma-separated) in the Model "
                     "impact view and render it"),
      QStringLiteral("reports"));
  parser.addOption(modelResults);
  parser.process(app);

  QString file = parser.positionalArguments().value(0);
  if (file.isEmpty()) file = QString::fromStdString(kvq::app::defaultSample());

  if (parser.isSet(screenshots))
    return kvq::ui::renderScreenshots(file, parser.value(screenshots), parser.value(compare),
                                      parser.value(modelResults).split(QLatin1Char(','), Qt::SkipEmptyParts));

  kvq::ui::MainWindow window;
  window.show();
  if (!file.isEmpty()) window.openFile(file);
  return QApplication::exec();
}
