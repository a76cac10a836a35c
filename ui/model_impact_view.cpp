#include "model_impact_view.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QSpinBox>
#include <QVBoxLayout>

#include "allocation_chart.h"
#include "model_impact_chart.h"

namespace kvq::ui {

ModelImpactView::ModelImpactView(QWidget* parent)
    : QWidget(parent),
      m_pathLabel(new QLabel(this)),
      m_status(new QLabel(this)),
      m_run(new QPushButton(tr("Run model"), this)),
      m_sinks(new QSpinBox(this)),
      m_rvqWindow(new QSpinBox(this)),
      m_kiviWindow(new QSpinBox(this)),
      m_chart(new ModelImpactChart(this)),
      m_allocation(new AllocationChart(this)) {
  auto* choose = new QPushButton(tr("Choose model…"), this);
  choose->setToolTip(tr("The GGUF file of the model the dump was made with (llama or qwen2)"));
  m_run->setToolTip(
      tr("Perplexity and KL of the model with the cache quantized by the shown study's codebooks at every "
         "depth and by KIVI-2/3/4, at the study's layers (all layers without a study)"));
  auto* openAllocation = new QPushButton(tr("Open allocation…"), this);
  openAllocation->setToolTip(
      tr("A codebook file written by kvq allocate: its bits per layer, keys and values"));
  connect(openAllocation, &QPushButton::clicked, this, &ModelImpactView::chooseAllocation);
  auto* openResults = new QPushButton(tr("Open results…"), this);
  openResults->setToolTip(
      tr("Reports written by kvq ppl --json on the same dump: charted beside the run "
         "(an allocation, other codebooks, other windows)"));
  auto* clearResults = new QPushButton(tr("Clear results"), this);
  clearResults->setToolTip(tr("Removes the opened reports from the chart; the run stays"));
  connect(openResults, &QPushButton::clicked, this, &ModelImpactView::chooseResults);
  connect(clearResults, &QPushButton::clicked, m_chart, &ModelImpactChart::clearResults);
  connect(choose, &QPushButton::clicked, this, &ModelImpactView::chooseModel);
  connect(m_run, &QPushButton::clicked, this, &ModelImpactView::runRequested);
  m_pathLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* row = new QHBoxLayout;
  row->addWidget(new QLabel(tr("Model:"), this));
  row->addWidget(m_pathLabel, 1);
  row->addWidget(choose);
  row->addWidget(m_run);
  row->addWidget(openAllocation);
  m_sinks->setObjectName(QStringLiteral("sinks"));
  m_rvqWindow->setObjectName(QStringLiteral("rvqWindow"));
  m_kiviWindow->setObjectName(QStringLiteral("kiviWindow"));
  m_sinks->setRange(0, 4096);
  m_sinks->setToolTip(tr("The first tokens of each sequence kept exact (attention sinks), RVQ and KIVI"));
  m_rvqWindow->setRange(0, 1 << 20);
  m_rvqWindow->setToolTip(tr("RVQ's sliding window: each query reads this many most recent tokens exact"));
  m_kiviWindow->setRange(0, 1 << 20);
  m_kiviWindow->setSingleStep(32);
  m_kiviWindow->setToolTip(tr("KIVI's full-precision recent window (a multiple of its 32-token key groups)"));
  auto* exact = new QHBoxLayout;
  exact->addWidget(new QLabel(tr("Exact tokens: sinks"), this));
  exact->addWidget(m_sinks);
  exact->addWidget(new QLabel(tr("RVQ window"), this));
  exact->addWidget(m_rvqWindow);
  exact->addWidget(new QLabel(tr("KIVI window"), this));
  exact->addWidget(m_kiviWindow);
  exact->addStretch(1);
  exact->addWidget(openResults);
  exact->addWidget(clearResults);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 0);
  layout->addLayout(row);
  layout->addLayout(exact);
  layout->addWidget(m_status);
  layout->addWidget(m_chart, 3);
  layout->addWidget(m_allocation, 2);
  setModelPath(QSettings().value(settingsKey()).toString());
}

void ModelImpactView::setModelPath(const QString& path) {
  m_modelPath = path;
  m_pathLabel->setText(path.isEmpty() ? tr("none chosen (scripts/fetch_model.sh fetches the sample's)")
                                      : path);
  if (!path.isEmpty()) QSettings().setValue(settingsKey(), path);
}

int ModelImpactView::sinks() const {
  return m_sinks->value();
}

int ModelImpactView::rvqWindow() const {
  return m_rvqWindow->value();
}

int ModelImpactView::kiviWindow() const {
  return m_kiviWindow->value();
}

void ModelImpactView::setStatus(const QString& text) {
  m_status->setText(text);
}

void ModelImpactView::chooseModel() {
  const QString dir = m_modelPath.isEmpty() ? QString() : QFileInfo(m_modelPath).absolutePath();
  const QString path = QFileDialog::getOpenFileName(this, tr("Choose the GGUF model"), dir,
                                                    tr("GGUF models (*.gguf);;All files (*)"));
  if (!path.isEmpty()) setModelPath(path);
}

}  // namespace kvq::ui

namespace kvq::ui {

void ModelImpactView::chooseAllocation() {
  const QString path = QFileDialog::getOpenFileName(this, tr("Open a bit allocation"), QString(),
                                                    tr("Codebook files (*.h5 *.hdf5);;All files (*)"));
  if (!path.isEmpty()) emit allocationRequested(path);
}

}  // namespace kvq::ui

namespace kvq::ui {

void ModelImpactView::chooseResults() {
  const QStringList paths = QFileDialog::getOpenFileNames(
      this, tr("Open kvq ppl reports"), QString(), tr("kvq ppl --json reports (*.json);;All files (*)"));
  if (!paths.isEmpty()) emit resultsRequested(paths);
}

}  // namespace kvq::ui
