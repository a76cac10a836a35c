// SettingsPanel — the quantizer settings: preset, codebook size C, depth K, group
// size g, key/value grouping, training sample, iterations, beam width, held-out
// fraction, seed, layers, backend.
// Choosing a preset loads all its settings; editing one switches to "custom" and
// keeps the preset's hidden settings (batch size, EMA decay, ...).
#pragma once

#include <QWidget>

#include "kvq/rvq/rvq_config.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSlider;
class QSpinBox;

namespace kvq::ui {

class SettingsPanel : public QWidget {
  Q_OBJECT

 public:
  // The sliders' ranges (C = 2^4 ... 2^14, K = 1 ... 16).
  static constexpr int kMinCodebookSize = 16;
  static constexpr int kMaxCodebookSize = 16384;
  static constexpr int kMaxDepth = 16;
  // Auto-train is on by default when the estimate of a training is at most this.
  static constexpr double kAutoTrainSeconds = 2.0;

  explicit SettingsPanel(QWidget* parent = nullptr);

  // The settings as a config (depth = the depth slider).
  kvq::RvqConfig config() const;
  void setConfig(const kvq::RvqConfig& config);
  void applyPreset(const QString& name);
  int depth() const;
  void setDepth(int depth);
  // Codebook size slider position: C = 2^exponent, exponent 4..14.
  void setCodebookSize(int size);

  // Restricts group sizes to the divisors of headDim (0: none open).
  void setHeadDim(int headDim);
  void setBackendName(const QString& name);
  // "auto", "cpu" or "cuda" (the last only when a GPU backend was built in).
  QString backendChoice() const;
  void setBackendChoice(const QString& choice);
  // Layers to train: "all" or a list such as "0-3, 7". Empty = all present.
  QList<int> layers(const QList<int>& present) const;
  void setLayersText(const QString& text);

  // Persist the settings (QSettings group "study": every RvqConfig field under its
  // name, from rvqConfigFields; layers; backend). Restoring starts from the stored
  // preset ("paper" for custom) and applies every stored field over it.
  void saveSettings() const;
  void restoreSettings();

  // Auto-train: every settings change retrains (a quick preview, then the full
  // recipe). Until the user sets it, it follows the estimate: on when a training of
  // the settings takes at most kAutoTrainSeconds (infinity: unknown, off).
  bool autoTrain() const;
  void setAutoTrain(bool on);  // the user's choice: no longer follows the estimate
  bool autoTrainChosen() const { return m_autoTrainChosen; }
  void setTrainingEstimate(double seconds);
  // Background training of the neighbouring codebook sizes (on by default).
  bool backgroundTraining() const;
  void setBackgroundTraining(bool on);

  QPushButton* trainButton() const { return m_train; }
  // Shown below the controls: "b = ... bits/channel, ratio ...×" or a staleness hint.
  void setStatusText(const QString& text);

 signals:
  void configEdited();  // any setting except depth
  void depthChanged(int depth);
  void trainRequested();
  void backendChoiceChanged(const QString& choice);
  void autoTrainToggled(bool on);           // by the user
  void backgroundTrainingToggled(bool on);  // by the user

 private:
  // The constructor's steps.
  void setUpQuantizerControls();
  void setUpTrainingControls();
  void setUpOtherControls();
  void buildLayout();
  void connectControls();

  void onEdited();
  void updateReadout();
  void setCodebookExponent(int exponent);

  kvq::RvqConfig m_base;  // the preset's settings that have no control
  int m_headDim = 0;
  bool m_applying = false;  // set while the panel sets its own controls (ApplyingScope)
  bool m_autoTrainChosen = false;

  QComboBox* m_preset;
  QSlider* m_codebook;
  QLabel* m_codebookLabel;
  QSlider* m_depth;
  QSpinBox* m_depthSpin;
  QComboBox* m_groupSize;
  QComboBox* m_keyGrouping;
  QComboBox* m_valueGrouping;
  QSpinBox* m_trainSample;
  QSpinBox* m_kmeansIterations;
  QSpinBox* m_emaSteps;
  QSpinBox* m_beamWidth;
  QCheckBox* m_centerChannels;
  QCheckBox* m_queryAware;
  QDoubleSpinBox* m_heldOut;
  QSpinBox* m_seed;
  QLineEdit* m_layers;
  QComboBox* m_backendChoice;
  QLabel* m_backend;
  QLabel* m_readout;
  QLabel* m_status;
  QCheckBox* m_autoTrain;
  QCheckBox* m_backgroundTraining;
  QPushButton* m_train;
};

}  // namespace kvq::ui
