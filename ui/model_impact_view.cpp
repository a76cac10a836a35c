#include "model_impact_view.h"

#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSettings>
#include <QVBoxLayout>

#include "allocation_chart.h"
#include "model_impact_chart.h"

namespace kvq::ui {

ModelImpactView::ModelImpactView(QWidget* parent)
    : QWidget(parent),
      m_pathLabel(new QLabel(this)),
      m_status(new QLabel(this)),
      m_run(new QPushButton(tr("Run model"), this)),
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
  connect(choose, &QPushButton::clicked, this, &ModelImpactView::chooseModel);
  connect(m_run, &QPushButton::clicked, this, &ModelImpactView::runRequested);
  m_pathLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
  auto* row = new QHBoxLayout;
  row->addWidget(new QLabel(tr("Model:"), this));
  row->addWidget(m_pathLabel, 1);
  row->addWidget(choose);
  row->addWidget(m_run);
  row->addWidget(openAllocation);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 0);
  layout->addLayout(row);
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
