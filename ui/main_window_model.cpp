// MainWindow: the "Model impact" tab's run — the model over the open dump's tokens with the
// cache quantized by the shown study's codebooks (every depth) and by KIVI-2/3/4, on the jobs.
#include <QFile>
#include <QFileInfo>
#include <QStatusBar>

#include <memory>

#include "allocation_chart.h"
#include "charts_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/isolate/open_file.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/perplexity.h"
#include "kvq/model/ppl_report.h"
#include "main_window.h"
#include "message_presenter.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"

namespace kvq::ui {

namespace {

// What the run evaluates: RVQ at depths 1..K of the codebooks (when a study is shown) and
// KIVI-2/3/4, at the codebooks' layers (every layer of the model without a study).
// KIVI's value groups are 32 channels, or the whole head when head_dim is not a multiple of 32.
// Sinks and the two windows come from the view (RVQ's sliding one, KIVI's own).
struct ExactTokens {
  int sinks = 0, rvqWindow = 0, kiviWindow = 0;
};

kvq::PplOptions modelImpactOptions(const kvq::CodebookFile* codebooks, const std::string& backend,
                                   int headDim, const ExactTokens& exact) {
  kvq::PplOptions o;
  o.codebooks = codebooks;
  o.codebookPath = "the shown study's codebooks";
  o.backend = backend;
  if (codebooks != nullptr) {
    for (int k = 1; k <= codebooks->config.depth; ++k)
      o.variants.push_back(kvq::rvqVariant(k, exact.sinks, exact.rvqWindow));
  }
  for (int bits : {2, 3, 4}) {
    kvq::CacheVariantSpec s;
    s.kind = kvq::CacheVariantKind::Kivi;
    s.bits = bits;
    s.channelGroup = headDim % 32 == 0 ? 32 : headDim;
    s.sinks = exact.sinks;
    s.window = exact.kiviWindow;
    o.variants.push_back(s);
  }
  return o;
}

}  // namespace

void MainWindow::runModelImpact() {
  ModelImpactView* view = m_charts->modelImpact();
  if (!m_session) {
    view->setStatus(tr("Open a dump first: the model runs over the dump's own tokens."));
    return;
  }
  if (view->modelPath().isEmpty()) {
    view->setStatus(tr("Choose the model the dump was made with first."));
    return;
  }
  std::shared_ptr<const kvq::CodebookFile> codebooks;
  if (m_shown) codebooks = std::make_shared<const kvq::CodebookFile>(kvq::codebookFileFromStudy(*m_shown));
  const std::string dumpPath = m_session->path.toStdString();
  // The file the isolated validator passed when the session opened, and nothing else.
  const kvq::FileIdentity identity = m_session->reader->identity();
  const std::string modelPath = view->modelPath().toStdString();
  const std::string backend = m_lastBackendChoice.toStdString();
  const ExactTokens exact{view->sinks(), view->rvqWindow(), view->kiviWindow()};
  view->setStatus(codebooks
                      ? tr("Running the model with the shown study's codebooks and KIVI-2/3/4…")
                      : tr("Running the model with KIVI-2/3/4 at every layer (train a study for RVQ)…"));
  m_jobs->run<std::shared_ptr<const kvq::PplReport>>(
      job_tag::kModel, tr("Running %1").arg(QFileInfo(view->modelPath()).fileName()), this,
      [dumpPath, identity, modelPath, codebooks, backend, exact](const kvq::TaskControl& control) {
        kvq::OpenOptions open;
        open.scanValues = false;  // scanned when the session opened
        open.expectedIdentity = identity;
        const auto dump = kvq::DumpReader::open(dumpPath, open);
        kvq::ModelLoadOptions load;
        load.control = &control;
        const auto model = kvq::loadDecoderModel(modelPath, load);
        const kvq::PplOptions options =
            modelImpactOptions(codebooks.get(), backend, model->config.headDim, exact);
        return std::make_shared<const kvq::PplReport>(
            kvq::evaluatePerplexity(*model, *dump, options, &control));
      },
      [this, view](std::shared_ptr<const kvq::PplReport>& report) {
        const int removed = view->chart()->setReport(*report);
        view->setStatus(tr("Reference perplexity %1 over %2 tokens, %3 variants, %4 s%5")
                            .arg(report->reference.perplexity(), 0, 'f', 3)
                            .arg(report->reference.tokens)
                            .arg(report->variants.size())
                            .arg(report->seconds, 0, 'f', 1)
                            .arg(removed == 0 ? QString()
                                              : tr("; %n opened report(s) measured on other tokens removed",
                                                   "", removed)));
        statusBar()->showMessage(tr("Model run finished"), 4000);
      },
      [this, view](const kvq::Error& error) {
        view->setStatus(tr("The model could not run (earlier results kept)."));
        m_presenter->showError(this, tr("Cannot run the model"), QString::fromStdString(error.what()));
      });
  updateActions();
}

void MainWindow::openAllocation(const QString& path) {
  try {
    // Validated in a limited child first, as every file the studio opens (kvq/isolate/open_file.h).
    const kvq::CodebookFile file = kvq::openCodebookFile(path.toStdString(), openPolicy());
    if (!file.allocation) {
      throwBadInput(path.toStdString(), "/allocation",
                    "no bit allocation in this file (write one with kvq allocate)");
    }
    m_charts->modelImpact()->allocationChart()->setAllocation(*file.allocation);
  } catch (const kvq::Error& error) {
    m_presenter->showError(this, tr("Cannot open the allocation"), QString::fromStdString(error.what()));
  }
}

}  // namespace kvq::ui

namespace kvq::ui {

namespace {

// A report file's text; BadInput naming the file when it cannot be read or is implausibly large
// for a report (one JSON object of a few variants: kilobytes).
std::string readReportText(const QString& path) {
  constexpr qint64 kMaxBytes = qint64{64} << 20;
  QFile file(path);
  if (!file.open(QIODevice::ReadOnly)) {
    kvq::throwBadInput(path.toStdString(), "", "cannot be read: " + file.errorString().toStdString());
  }
  if (file.size() > kMaxBytes) {
    kvq::throwBadInput(path.toStdString(), "", "is over 64 MiB: not a kvq ppl --json report");
  }
  return file.readAll().toStdString();
}

}  // namespace

void MainWindow::openModelResults(const QStringList& paths) {
  ModelImpactChart* chart = m_charts->modelImpact()->chart();
  QStringList problems;
  for (const QString& path : paths) {
    try {
      const kvq::PplReport report = kvq::pplReportFromJson(readReportText(path), path.toStdString());
      const QString refused = chart->addResults(QFileInfo(path).completeBaseName(), report);
      if (!refused.isEmpty()) problems << refused;
    } catch (const kvq::Error& error) {
      problems << QString::fromStdString(error.what());
    }
  }
  if (!problems.isEmpty()) {
    m_presenter->showError(this, tr("Cannot chart every report"), problems.join(QStringLiteral("\n\n")));
  }
}

}  // namespace kvq::ui
