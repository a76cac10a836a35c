// kvq-studio: the GUI's main(). Thin: application identity (for QSettings), the
// command line, then the main window from kvq_ui.
#include <QApplication>
#include <QCommandLineParser>

#include "default_sample.h"
#include "kvq/base/hdf5_process.h"
#include "main_window.h"
#include "screenshots.h"
#ifdef KVQ_HAVE_CUDA
#include "kvq/gpu/cuda_backend.h"
#endif
#ifdef KVQ_HAVE_CUBLAS
#include "kvq/gpu/cublas_model_gemm.h"
#endif

int main(int argc, char** argv) {
  kvq::prepareHdf5ForProcess();  // first: before anything touches HDF5
#ifdef KVQ_HAVE_CUDA
  kvq::gpu::registerCudaBackend();  // makes "cuda" and "auto" in the backend choice reach the GPU
#endif
#ifdef KVQ_HAVE_CUBLAS
  kvq::gpu::registerCublasModelGemm();  // the model pass's weight products on the GPU (kvq ppl, Model impact)
#endif
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
  parser.process(app);

  QString file = parser.positionalArguments().value(0);
  if (file.isEmpty()) file = QString::fromStdString(kvq::app::defaultSample());

  if (parser.isSet(screenshots))
    return kvq::ui::renderScreenshots(file, parser.value(screenshots), parser.value(compare));

  kvq::ui::MainWindow window;
  window.show();
  if (!file.isEmpty()) window.openFile(file);
  return QApplication::exec();
}
