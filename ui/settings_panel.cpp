#include "settings_panel.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSettings>
#include <QSlider>
#include <QSpinBox>
#include <QVBoxLayout>

#include "config_settings.h"
#include "kvq/rvq/backend_registry.h"

#include <algorithm>
#include <cmath>

namespace kvq::ui {
namespace {

constexpr int kMinCodebookExponent = 4;   // C = 16
constexpr int kMaxCodebookExponent = 14;  // C = 16384
static_assert(SettingsPanel::kMinCodebookSize == 1 << kMinCodebookExponent);
static_assert(SettingsPanel::kMaxCodebookSize == 1 << kMaxCodebookExponent);
constexpr int kMaxDepth = SettingsPanel::kMaxDepth;
constexpr int kMaxBeamWidth = 64;             // validateConfig's limit
constexpr double kMaxHeldOutFraction = 0.95;  // validateConfig allows [0, 1); keep some training tokens
const QString kSettingsGroup = QStringLiteral("study");

QComboBox* groupingCombo(QWidget* parent) {
  auto* combo = new QComboBox(parent);
  combo->addItem(QObject::tr("strided"), static_cast<int>(kvq::Grouping::Strided));
  combo->addItem(QObject::tr("contiguous"), static_cast<int>(kvq::Grouping::Contiguous));
  return combo;
}

// While alive, the panel's own handlers ignore its controls' signals (they test
// m_applying): the one way the panel sets controls without it counting as an edit.
// Nests: restores the flag it found.
class ApplyingScope {
 public:
  explicit ApplyingScope(bool& flag) : m_flag(flag), m_was(flag) { m_flag = true; }
  ~ApplyingScope() { m_flag = m_was; }
  ApplyingScope(const ApplyingScope&) = delete;
  ApplyingScope& operator=(const ApplyingScope&) = delete;

 private:
  bool& m_flag;
  bool m_was;
};

void selectData(QComboBox* combo, int value) {
  const int i = combo->findData(value);
  if (i >= 0) combo->setCurrentIndex(i);
}

}  // namespace

SettingsPanel::SettingsPanel(QWidget* parent)
    : QWidget(parent),
      m_base(kvq::presetConfig("paper")),
      m_preset(new QComboBox(this)),
      m_codebook(new QSlider(Qt::Horizontal, this)),
      m_codebookLabel(new QLabel(this)),
      m_depth(new QSlider(Qt::Horizontal, this)),
      m_depthSpin(new QSpinBox(this)),
      m_groupSize(new QComboBox(this)),
      m_keyGrouping(groupingCombo(this)),
      m_valueGrouping(groupingCombo(this)),
      m_trainSample(new QSpinBox(this)),
      m_kmeansIterations(new QSpinBox(this)),
      m_emaSteps(new QSpinBox(this)),
      m_beamWidth(new QSpinBox(this)),
      m_centerChannels(new QCheckBox(this)),
      m_queryAware(new QCheckBox(this)),
      m_heldOut(new QDoubleSpinBox(this)),
      m_seed(new QSpinBox(this)),
      m_layers(new QLineEdit(this)),
      m_backendChoice(new QComboBox(this)),
      m_backend(new QLabel(this)),
      m_readout(new QLabel(this)),
      m_status(new QLabel(this)),
      m_autoTrain(new QCheckBox(tr("Auto-train"), this)),
      m_backgroundTraining(new QCheckBox(tr("Train neighbouring sizes in the background"), this)),
      m_train(new QPushButton(tr("Train"), this)) {
  setUpQuantizerControls();
  setUpTrainingControls();
  setUpOtherControls();
  buildLayout();
  setHeadDim(0);
  setConfig(m_base);
  connectControls();
}

// Preset, codebook size and depth: ranges and tooltips.
void SettingsPanel::setUpQuantizerControls() {
  for (const std::string& name : kvq::presetNames()) m_preset->addItem(QString::fromStdString(name));
  m_preset->addItem(QStringLiteral("custom"));
  m_preset->setToolTip(
      tr("paper: the settings of Kumar 2024 (C 2048, K 8, g 32, strided keys).\n"
         "fast: small sample, few steps — for interactive exploration.\n"
         "quality: k-means++, dead-entry reseeding, Lloyd refinement, beam-4 encoding.\n"
         "budget: C 256, g 8, K 4 — small codebooks for a bit budget (kvq allocate).\n"
         "model-loss: budget + centred channels, query-aware keys, beam-4 encoding\n"
         "(the levers that lowered perplexity; needs a dump with queries).\n"
         "custom: any edit of a preset's settings."));

  m_codebook->setRange(kMinCodebookExponent, kMaxCodebookExponent);
  m_codebook->setPageStep(1);
  m_codebook->setTickPosition(QSlider::TicksBelow);
  m_codebook->setToolTip(
      tr("Codebook size C: entries per stage (a power of two, 16…16384).\n"
         "Each stage stores log2(C) bits per group of g channels."));
  m_codebookLabel->setMinimumWidth(90);

  m_depth->setRange(1, kMaxDepth);
  m_depth->setPageStep(1);
  m_depth->setTickPosition(QSlider::TicksBelow);
  m_depthSpin->setRange(1, kMaxDepth);
  const QString depthTip =
      tr("Depth K: residual stages. One training at depth K gives the error of every depth ≤ K,\n"
         "so moving this below the trained depth updates the charts at once.");
  m_depth->setToolTip(depthTip);
  m_depthSpin->setToolTip(depthTip);
}

// Group size, groupings and the training settings: ranges and tooltips.
void SettingsPanel::setUpTrainingControls() {
  m_groupSize->setToolTip(
      tr("Group size g: channels quantized together as one vector (divides head_dim).\n"
         "Larger groups: fewer bits per channel, higher error."));
  m_keyGrouping->setToolTip(
      tr("Which channels form a key group. strided (the paper's non-contiguous):\n"
         "group j = channels j, j+D/g, … — spreads RoPE pairs and outlier channels."));
  m_valueGrouping->setToolTip(tr("Which channels form a value group: contiguous (the paper) or strided."));
  m_trainSample->setRange(16, 100'000'000);
  m_trainSample->setSingleStep(10'000);
  m_trainSample->setGroupSeparatorShown(true);
  m_trainSample->setToolTip(
      tr("At most this many group vectors of the training tokens are sampled\n"
         "for k-means initialisation (the paper: 100 000). Must be ≥ C."));
  m_kmeansIterations->setRange(0, 1000);
  m_kmeansIterations->setToolTip(
      tr("k-means iterations initialising each stage on the residuals of the previous ones"));
  m_emaSteps->setRange(0, 100'000);
  m_emaSteps->setToolTip(tr("EMA refinement steps per stage (mini-batches; the paper: 200)"));
  m_beamWidth->setObjectName(QStringLiteral("beamWidth"));
  m_beamWidth->setRange(1, kMaxBeamWidth);
  m_beamWidth->setToolTip(
      tr("Encoding beam width: 1 = greedy, stage by stage (the paper).\n"
         "> 1 = beam search keeping this many partial codes per vector:\n"
         "lower error at the same bits, encoding about this many times slower."));
  m_centerChannels->setObjectName(QStringLiteral("centerChannels"));
  m_centerChannels->setToolTip(
      tr("Centre channels: subtract each kv head's per-channel training mean before scaling\n"
         "and add it back after decoding (stored with the codebooks). Exact; frees the codebooks\n"
         "from the constant part of outlier channels."));
  m_queryAware->setObjectName(QStringLiteral("queryAware"));
  m_queryAware->setToolTip(
      tr("Query-aware keys: weight each key channel's error by the dump's mean squared query\n"
         "(the error the attention logits see). Needs a dump with queries."));
  m_heldOut->setObjectName(QStringLiteral("heldOutFraction"));
  m_heldOut->setRange(0.0, kMaxHeldOutFraction);
  m_heldOut->setDecimals(3);
  m_heldOut->setSingleStep(0.05);
  m_heldOut->setToolTip(
      tr("Held-out fraction: the tail of every sequence (this fraction of its tokens)\n"
         "is kept out of training; every reported error is measured on it.\n"
         "0 = train and evaluate on all tokens (optimistic errors)."));
  m_seed->setRange(0, std::numeric_limits<int>::max());
  m_seed->setToolTip(tr("Random seed: the same seed and settings train the same codebooks"));
}

// Layers, backend, read-out, status and the Train button.
void SettingsPanel::setUpOtherControls() {
  m_layers->setPlaceholderText(tr("all"));
  m_layers->setToolTip(tr("Layers to train: empty for all, or a list such as 0-3, 7"));
  m_backendChoice->addItem(tr("auto"), QStringLiteral("auto"));
  m_backendChoice->addItem(tr("CPU"), QStringLiteral("cpu"));
  if (kvq::gpuBackendBuilt()) m_backendChoice->addItem(tr("CUDA"), QStringLiteral("cuda"));
  m_backendChoice->setToolTip(
      tr("Compute backend for training and encoding.\n"
         "auto: the GPU when one is built in and usable, else the CPU."));
  m_backend->setToolTip(tr("The backend that runs the training"));
  m_backend->setWordWrap(true);
  m_readout->setToolTip(
      tr("b = K·log2(C)/g + 16/D bits per channel (per-vector fp16 scale included);\n"
         "compression ratio against fp16 = 16/b"));
  m_status->setWordWrap(true);
  m_train->setToolTip(tr("Train and evaluate the quantizers for these settings (Ctrl+T)"));
  m_autoTrain->setObjectName(QStringLiteral("autoTrain"));
  m_autoTrain->setToolTip(
      tr("Retrain on every settings change: a quick preview first, then the full recipe.\n"
         "Until you set it, it is on when a training of the settings is estimated\n"
         "to take at most %1 s (from the backend's measured throughput).")
          .arg(kAutoTrainSeconds));
  m_backgroundTraining->setObjectName(QStringLiteral("backgroundTraining"));
  m_backgroundTraining->setChecked(true);
  m_backgroundTraining->setToolTip(
      tr("After a training, train the codebook sizes around it (C/2, 2C, …) at full depth\n"
         "at low priority, so the codebook-size and depth sliders show real results at once."));
  m_train->setDefault(true);
}

// Two forms (quantizer, training) whose rows are labelled by settingLabel, the
// labels the GUI also names fields by in error messages.
void SettingsPanel::buildLayout() {
  auto* codebookRow = new QHBoxLayout;
  codebookRow->addWidget(m_codebook, 1);
  codebookRow->addWidget(m_codebookLabel);
  auto* depthRow = new QHBoxLayout;
  depthRow->addWidget(m_depth, 1);
  depthRow->addWidget(m_depthSpin);

  auto* quantizer = new QGroupBox(tr("Quantizer"), this);
  auto* qForm = new QFormLayout(quantizer);
  qForm->addRow(settingLabel(QStringLiteral("preset")), m_preset);
  qForm->addRow(settingLabel(QStringLiteral("codebook_size")), codebookRow);
  qForm->addRow(settingLabel(QStringLiteral("depth")), depthRow);
  qForm->addRow(settingLabel(QStringLiteral("group_size")), m_groupSize);
  qForm->addRow(settingLabel(QStringLiteral("key_grouping")), m_keyGrouping);
  qForm->addRow(settingLabel(QStringLiteral("value_grouping")), m_valueGrouping);
  qForm->addRow(m_readout);

  auto* training = new QGroupBox(tr("Training"), this);
  auto* tForm = new QFormLayout(training);
  tForm->addRow(settingLabel(QStringLiteral("train_sample")), m_trainSample);
  tForm->addRow(settingLabel(QStringLiteral("kmeans_iterations")), m_kmeansIterations);
  tForm->addRow(settingLabel(QStringLiteral("ema_steps")), m_emaSteps);
  tForm->addRow(settingLabel(QStringLiteral("beam_width")), m_beamWidth);
  tForm->addRow(settingLabel(QStringLiteral("center_channels")), m_centerChannels);
  tForm->addRow(settingLabel(QStringLiteral("query_aware")), m_queryAware);
  tForm->addRow(settingLabel(QStringLiteral("held_out_fraction")), m_heldOut);
  tForm->addRow(settingLabel(QStringLiteral("seed")), m_seed);
  tForm->addRow(settingLabel(QStringLiteral("layers")), m_layers);
  tForm->addRow(settingLabel(QStringLiteral("backend")), m_backendChoice);
  tForm->addRow(QString(), m_backend);

  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(quantizer);
  layout->addWidget(training);
  layout->addWidget(m_autoTrain);
  layout->addWidget(m_backgroundTraining);
  layout->addWidget(m_train);
  layout->addWidget(m_status);
  layout->addStretch(1);
}

// Edits of a control become configEdited (and switch the preset to custom); the
// panel's own changes (m_applying, see ApplyingScope) do not.
void SettingsPanel::connectControls() {
  connect(m_preset, &QComboBox::currentTextChanged, this, [this](const QString& name) {
    if (!m_applying && name != QStringLiteral("custom")) applyPreset(name);
  });
  connect(m_codebook, &QSlider::valueChanged, this, [this](int e) {
    setCodebookExponent(e);
    onEdited();
  });
  connect(m_depth, &QSlider::valueChanged, this, [this](int k) {
    if (m_depthSpin->value() != k) m_depthSpin->setValue(k);
    updateReadout();
    if (!m_applying) emit depthChanged(k);
  });
  connect(m_depthSpin, qOverload<int>(&QSpinBox::valueChanged), m_depth, &QSlider::setValue);
  for (QComboBox* c : {m_groupSize, m_keyGrouping, m_valueGrouping}) {
    connect(c, qOverload<int>(&QComboBox::currentIndexChanged), this, &SettingsPanel::onEdited);
  }
  for (QSpinBox* s : {m_trainSample, m_kmeansIterations, m_emaSteps, m_beamWidth, m_seed}) {
    connect(s, qOverload<int>(&QSpinBox::valueChanged), this, &SettingsPanel::onEdited);
  }
  connect(m_heldOut, qOverload<double>(&QDoubleSpinBox::valueChanged), this, &SettingsPanel::onEdited);
  for (QCheckBox* c : {m_centerChannels, m_queryAware})
    connect(c, &QCheckBox::toggled, this, &SettingsPanel::onEdited);
  connect(m_layers, &QLineEdit::editingFinished, this, [this] {
    if (!m_applying) emit configEdited();
  });
  connect(m_backendChoice, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] {
    if (!m_applying) emit backendChoiceChanged(backendChoice());
  });
  connect(m_train, &QPushButton::clicked, this, &SettingsPanel::trainRequested);
  connect(m_autoTrain, &QCheckBox::clicked, this, [this](bool on) {
    m_autoTrainChosen = true;
    emit autoTrainToggled(on);
  });
  connect(m_backgroundTraining, &QCheckBox::clicked, this, &SettingsPanel::backgroundTrainingToggled);
}

bool SettingsPanel::autoTrain() const {
  return m_autoTrain->isChecked();
}

void SettingsPanel::setAutoTrain(bool on) {
  m_autoTrainChosen = true;
  m_autoTrain->setChecked(on);
}

void SettingsPanel::setTrainingEstimate(double seconds) {
  const bool known = std::isfinite(seconds);
  QString estimate;
  if (known && seconds < 10)
    estimate = tr("%1 s").arg(seconds, 0, 'f', 1);
  else if (known && seconds < 120)
    estimate = tr("%1 s").arg(qRound(seconds));
  else if (known)
    estimate = tr("%1 min").arg(qRound(seconds / 60));
  m_autoTrain->setText(known ? tr("Auto-train (a training takes ≈ %1)").arg(estimate) : tr("Auto-train"));
  if (!m_autoTrainChosen) m_autoTrain->setChecked(known && seconds <= kAutoTrainSeconds);
}

bool SettingsPanel::backgroundTraining() const {
  return m_backgroundTraining->isChecked();
}

void SettingsPanel::setBackgroundTraining(bool on) {
  m_backgroundTraining->setChecked(on);
}

void SettingsPanel::setCodebookExponent(int exponent) {
  m_codebookLabel->setText(tr("C = %1 (%2 bits)").arg(1 << exponent).arg(exponent));
}

void SettingsPanel::setCodebookSize(int size) {
  const int exponent = std::clamp(static_cast<int>(std::lround(std::log2(std::max(size, 1)))),
                                  kMinCodebookExponent, kMaxCodebookExponent);
  m_codebook->setValue(exponent);
  setCodebookExponent(exponent);
}

void SettingsPanel::applyPreset(const QString& name) {
  kvq::RvqConfig config = kvq::presetConfig(name.toStdString());
  config.seed = static_cast<uint64_t>(m_seed->value());  // a preset is about method, not the seed
  setConfig(config);
  emit configEdited();
}

void SettingsPanel::setConfig(const kvq::RvqConfig& config) {
  {
    const ApplyingScope applying(m_applying);
    m_base = config;
    const int presetIndex = m_preset->findText(QString::fromStdString(config.preset));
    m_preset->setCurrentIndex(presetIndex >= 0 ? presetIndex : m_preset->findText(QStringLiteral("custom")));
    setCodebookSize(config.codebookSize);
    m_depth->setValue(std::clamp(config.depth, 1, kMaxDepth));
    m_depthSpin->setValue(m_depth->value());  // also before the slider's signal is connected
    selectData(m_groupSize, config.groupSize);
    selectData(m_keyGrouping, static_cast<int>(config.keyGrouping));
    selectData(m_valueGrouping, static_cast<int>(config.valueGrouping));
    m_trainSample->setValue(
        static_cast<int>(std::min<int64_t>(config.trainSample, m_trainSample->maximum())));
    m_kmeansIterations->setValue(config.kmeansIterations);
    m_emaSteps->setValue(config.emaSteps);
    m_beamWidth->setValue(config.beamWidth);
    m_centerChannels->setChecked(config.centerChannels);
    m_queryAware->setChecked(config.queryAware);
    m_heldOut->setValue(config.heldOutFraction);
    m_seed->setValue(
        static_cast<int>(std::min<uint64_t>(config.seed, static_cast<uint64_t>(m_seed->maximum()))));
  }
  updateReadout();
}

kvq::RvqConfig SettingsPanel::config() const {
  kvq::RvqConfig config = m_base;
  config.preset = m_preset->currentText().toStdString();
  config.codebookSize = 1 << m_codebook->value();
  config.depth = m_depth->value();
  config.groupSize =
      m_groupSize->currentData().isValid() ? m_groupSize->currentData().toInt() : m_base.groupSize;
  config.keyGrouping = static_cast<kvq::Grouping>(m_keyGrouping->currentData().toInt());
  config.valueGrouping = static_cast<kvq::Grouping>(m_valueGrouping->currentData().toInt());
  config.trainSample = m_trainSample->value();
  config.kmeansIterations = m_kmeansIterations->value();
  config.emaSteps = m_emaSteps->value();
  config.beamWidth = m_beamWidth->value();
  config.centerChannels = m_centerChannels->isChecked();
  config.queryAware = m_queryAware->isChecked();
  config.heldOutFraction = m_heldOut->value();
  config.seed = static_cast<uint64_t>(m_seed->value());
  return config;
}

int SettingsPanel::depth() const {
  return m_depth->value();
}
void SettingsPanel::setDepth(int depth) {
  m_depth->setValue(depth);
}

void SettingsPanel::setHeadDim(int headDim) {
  const ApplyingScope applying(m_applying);
  m_headDim = headDim;
  const int current =
      m_groupSize->currentData().isValid() ? m_groupSize->currentData().toInt() : m_base.groupSize;
  m_groupSize->clear();
  QList<int> sizes;
  if (headDim > 0) {
    for (int g = 1; g <= headDim; ++g) {
      if (headDim % g == 0) sizes << g;
    }
  } else {
    sizes = {1, 2, 4, 8, 16, 32, 64, 128};
  }
  for (int g : sizes) m_groupSize->addItem(QString::number(g), g);
  // Keep the group size when it still divides; otherwise the largest divisor below it.
  int pick = sizes.front();
  for (int g : sizes) {
    if (g <= current) pick = g;
  }
  selectData(m_groupSize, pick);
  updateReadout();
}

QString SettingsPanel::backendChoice() const {
  return m_backendChoice->currentData().toString();
}

void SettingsPanel::setBackendChoice(const QString& choice) {
  const ApplyingScope applying(m_applying);
  const int i = m_backendChoice->findData(choice);
  if (i >= 0) m_backendChoice->setCurrentIndex(i);
}

void SettingsPanel::setBackendName(const QString& name) {
  m_backend->setText(name);
}

void SettingsPanel::setLayersText(const QString& text) {
  m_layers->setText(text);
}

QList<int> SettingsPanel::layers(const QList<int>& present) const {
  const QString text = m_layers->text().trimmed();
  if (text.isEmpty() || text.compare(QStringLiteral("all"), Qt::CaseInsensitive) == 0) return present;
  QList<int> out;
  static const QRegularExpression range(QStringLiteral("^\\s*(\\d+)\\s*(?:-\\s*(\\d+))?\\s*$"));
  for (const QString& part : text.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
    const QRegularExpressionMatch m = range.match(part);
    if (!m.hasMatch()) continue;
    const int lo = m.captured(1).toInt();
    const int hi = m.captured(2).isEmpty() ? lo : m.captured(2).toInt();
    for (int l = lo; l <= hi; ++l) {
      if (present.contains(l) && !out.contains(l)) out << l;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void SettingsPanel::saveSettings() const {
  QSettings settings;
  settings.beginGroup(kSettingsGroup);
  saveConfig(settings, kvq::rvqConfigTable(), config());  // every field, under its own name
  settings.setValue(QStringLiteral("layers"), m_layers->text());
  settings.setValue(QStringLiteral("backend"), backendChoice());
  if (m_autoTrainChosen) settings.setValue(QStringLiteral("autoTrain"), autoTrain());
  settings.setValue(QStringLiteral("backgroundTraining"), backgroundTraining());
  settings.endGroup();
}

void SettingsPanel::restoreSettings() {
  QSettings settings;
  settings.beginGroup(kSettingsGroup);
  if (!settings.contains(QStringLiteral("preset"))) return;
  const std::vector<std::string> presets = kvq::presetNames();
  const std::string preset = settings.value(QStringLiteral("preset")).toString().toStdString();
  const bool known = std::find(presets.begin(), presets.end(), preset) != presets.end();
  // The stored fields over the preset's: a field this version added keeps the preset's value.
  kvq::RvqConfig c = loadConfig(settings, kvq::rvqConfigTable(), kvq::presetConfig(known ? preset : "paper"));
  c.preset = known ? preset : "custom";
  m_layers->setText(settings.value(QStringLiteral("layers")).toString());
  setBackendChoice(settings.value(QStringLiteral("backend"), QStringLiteral("auto")).toString());
  if (settings.contains(QStringLiteral("autoTrain")))
    setAutoTrain(settings.value(QStringLiteral("autoTrain")).toBool());
  setBackgroundTraining(settings.value(QStringLiteral("backgroundTraining"), true).toBool());
  settings.endGroup();
  setConfig(c);
}

void SettingsPanel::setStatusText(const QString& text) {
  m_status->setText(text);
}

void SettingsPanel::onEdited() {
  if (m_applying) return;
  {
    const ApplyingScope applying(m_applying);
    m_preset->setCurrentIndex(m_preset->findText(QStringLiteral("custom")));
  }
  updateReadout();
  emit configEdited();
}

void SettingsPanel::updateReadout() {
  if (m_headDim <= 0) {
    m_readout->setText(tr("<i>Open a dump to see bits per channel</i>"));
    return;
  }
  const kvq::RvqConfig c = config();
  const double bits = kvq::rvqBitsPerChannel(c.codebookSize, c.depth, c.groupSize, m_headDim);
  m_readout->setText(tr("<b>%1</b> bits/channel · ratio <b>%2×</b> vs fp16")
                         .arg(bits, 0, 'f', 3)
                         .arg(kvq::compressionRatio(bits), 0, 'f', 2));
}

}  // namespace kvq::ui
