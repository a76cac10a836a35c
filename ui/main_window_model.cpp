// MainWindow: the "Model impact" tab's run — the model over the open dump's tokens with the
// cache quantized by the shown study's codebooks (every depth) and by KIVI-2/3/4, on the jobs.
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
#include "main_window.h"
#include "message_presenter.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"

namespace kvq::ui {

namespace {

// What the run evaluates: RVQ at depths 1..K of the codebooks (when a study is shown) and
// KIVI-2/3/4, at the codebooks' layers (every layer of the model without a study).
// KIVI's value groups are 32 channels, or the whole head when head_dim is not a multiple of 32.
kvq::PplOptions modelImpactOptions(const kvq::CodebookFile* codebooks, const std::string& backend,
                                   int headDim) {
  kvq::PplOptions o;
  o.codebooks = codebooks;
  o.codebookPath = "the shown study's codebooks";
  o.backend = backend;
  if (codebooks != nullptr) {
    for (int k = 1; k <= codebooks->config.depth; ++k) o.variants.push_back(kvq::rvqVariant(k, 0, 0));
  }
  for (int bits : {2, 3, 4}) {
    kvq::CacheVariantSpec s;
    s.kind = kvq::CacheVariantKind::Kivi;
    s.bits = bits;
    s.channelGroup = headDim % 32 == 0 ? 32 : headDim;
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
  view->setStatus(codebooks
                      ? tr("Running the model with the shown study's codebooks and KIVI-2/3/4…")
                      : tr("Running the model with KIVI-2/3/4 at every layer (train a study for RVQ)…"));
  m_jobs->run<std::shared_ptr<const kvq::PplReport>>(
      job_tag::kModel, tr("Running %1").arg(QFileInfo(view->modelPath()).fileName()), this,
      [dumpPath, identity, modelPath, codebooks, backend](const kvq::TaskControl& control) {
        kvq::OpenOptions open;
        open.scanValues = false;  // scanned when the session opened
        open.expectedIdentity = identity;
        const auto dump = kvq::DumpReader::open(dumpPath, open);
        kvq::ModelLoadOptions load;
        load.control = &control;
        const auto model = kvq::loadDecoderModel(modelPath, load);
        const kvq::PplOptions options = modelImpactOptions(codebooks.get(), backend, model->config.headDim);
        return std::make_shared<const kvq::PplReport>(
            kvq::evaluatePerplexity(*model, *dump, options, &control));
      },
      [this, view](std::shared_ptr<const kvq::PplReport>& report) {
        view->chart()->setReport(*report);
        view->setStatus(tr("Reference perplexity %1 over %2 tokens, %3 variants, %4 s")
                            .arg(report->reference.perplexity(), 0, 'f', 3)
                            .arg(report->reference.tokens)
                            .arg(report->variants.size())
                            .arg(report->seconds, 0, 'f', 1));
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
