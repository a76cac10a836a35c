// Attention in the GUI: a training on a dump with queries fills the "Attention
// error by layer" chart and the rate–distortion chart's attention axes with the
// StudyResult's numbers; File → Evaluate Codebooks adds a "from FILE" series; a
// codebook file that does not fit the dump gets a message naming the mismatch;
// a dump without queries shows a placeholder.
#include <QChart>
#include <QComboBox>
#include <QLineSeries>
#include <QScatterSeries>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <memory>
#include <random>

#include "attention_layer_chart.h"
#include "charts_panel.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/dump/synth.h"
#include "kvq/io/codebook_file.h"
#include "kvq/rvq/cpu_backend.h"
#include "main_window.h"
#include "message_presenter.h"
#include "rate_distortion_chart.h"
#include "settings_panel.h"
#include "study_queries.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;

class AttentionViewTest : public QObject, kvq::ui::test::WindowFixture {
  Q_OBJECT

 private slots:
  void initTestCase();
  void cleanupTestCase();
  void attentionChartMatchesStudy();
  void rateDistortionAxisIsSelectable();
  void evaluatedCodebooksAreASecondSeries();
  void codebooksThatDoNotFitAreRefusedWithTheMismatch();
  void dumpWithoutQueriesShowsPlaceholders();

 private:
  static constexpr int kDepth = 3;
};

namespace {

constexpr int kKv = 2, kQ = 4, kD = 32;
constexpr int64_t kT = 512;  // two sequences of 256

// A dump with queries: keys share a direction so attention is uneven.
void writeQueryDump(const QString& path, int headDim, const std::vector<int>& layers) {
  kvq::DumpHeader h;
  h.model = "attention view test";
  h.numLayers = 8;
  h.numKvHeads = kKv;
  h.numQHeads = kQ;
  h.headDim = headDim;
  h.ropeTheta = 10000.0;
  h.dtype = kvq::DType::Float32;
  h.tokens = kT;
  auto writer = kvq::DumpWriter::create(path.toStdString(), h);
  std::mt19937_64 rng(9);
  std::normal_distribution<float> n;
  auto slab = [&](int heads, float offset) {
    kvq::Slab s{0, kT, heads, headDim, std::vector<float>(static_cast<size_t>(kT * heads * headDim))};
    for (size_t i = 0; i < s.data.size(); ++i) s.data[i] = n(rng) + (i % headDim == 1 ? offset : 0.0f);
    return s;
  };
  for (int layer : layers) {
    const kvq::Slab k = slab(kKv, 3.0f), v = slab(kKv, 0.0f), q = slab(kQ, 2.0f);
    writer->writeLayer(layer, k, v, &q);
  }
  writer->writeSequenceStarts({0, kT / 2});
  writer->commit();
}

QLineSeries* lineNamed(ChartWidget* chart, const QString& name) {
  for (QAbstractSeries* s : chart->series()) {
    if (s->name() == name) return qobject_cast<QLineSeries*>(s);
  }
  return nullptr;
}

bool close(double a, double b) {
  return std::abs(a - b) <= 1e-9 * std::max(1e-12, std::abs(b));
}

}  // namespace

void AttentionViewTest::initTestCase() {
  kvq::ui::test::initTestApplication(QStringLiteral("test_attention_view"));
  QVERIFY(m_dir.isValid());
  const QString path = m_dir.filePath(QStringLiteral("queries.h5"));
  writeQueryDump(path, kD, {0, 1});
  createWindow();
  QVERIFY(openAndWait(path));
  setQuickConfig(32, kDepth);
  const QString trained = trainAndWait();
  QVERIFY2(trained.isEmpty(), qPrintable(trained));
  QVERIFY(hasAttention(*m_window->shownStudy()));
}

void AttentionViewTest::cleanupTestCase() {
  m_window.reset();
}

void AttentionViewTest::attentionChartMatchesStudy() {
  const kvq::StudyResult& study = *m_window->shownStudy();
  QCOMPARE(attentionDepths(study), (std::vector<int>{1, 2, 3}));  // every depth, for the RD chart
  AttentionLayerChart* chart = m_window->chartsPanel()->attentionByLayer();
  QVERIFY(!chart->isPlaceholder());
  QLineSeries* rvq = lineNamed(chart, QStringLiteral("RVQ K = 3 output error"));
  QLineSeries* rvqKl = lineNamed(chart, QStringLiteral("RVQ K = 3 KL"));
  // KIVI at equal bits: C = 32, g = 8, D = 32 -> 3 * 5 / 8 + 0.5 = 2.375 bits; KIVI-2 (n = 32) is 3.
  const int bits = kiviBitsNear(study, kvq::rvqBitsPerChannel(32, kDepth, 8, kD));
  QCOMPARE(bits, 2);
  QLineSeries* kivi = lineNamed(chart, QStringLiteral("KIVI-2 output error"));
  QVERIFY(rvq && rvqKl && kivi);
  QCOMPARE(rvq->count(), 2);
  for (int i = 0; i < 2; ++i) {
    const kvq::LayerAttentionResult& layer = study.attention.layers[static_cast<size_t>(i)];
    QCOMPARE(rvq->at(i).x(), static_cast<double>(layer.layer));
    QVERIFY(close(rvq->at(i).y(), findAttention(layer, "rvq", kDepth)->total.outputRelativeError()));
    QVERIFY(close(rvqKl->at(i).y(), findAttention(layer, "rvq", kDepth)->total.meanKl()));
    QVERIFY(close(kivi->at(i).y(), findAttention(layer, "kivi", 2)->total.outputRelativeError()));
  }
  emit rvq->hovered(rvq->at(1), true);  // per-head values on hover
  const kvq::AttentionMethodResult* m = findAttention(study.attention.layers[1], "rvq", kDepth);
  QVERIFY2(chart->readout().contains(QStringLiteral("per head: h0")), qPrintable(chart->readout()));
  QVERIFY2(
      chart->readout().contains(QStringLiteral("h3 %1").arg(m->perHead[3].outputRelativeError(), 0, 'g', 3)),
      qPrintable(chart->readout()));
  // The depth slider picks the RVQ line's depth (the hidden tab's chart is drawn when asked for).
  m_window->settingsPanel()->setDepth(2);
  QCOMPARE(m_window->chartsPanel()->attentionByLayer(), chart);
  QVERIFY(lineNamed(chart, QStringLiteral("RVQ K = 2 output error")) != nullptr);
  m_window->settingsPanel()->setDepth(kDepth);
}

void AttentionViewTest::rateDistortionAxisIsSelectable() {
  const kvq::StudyResult& study = *m_window->shownStudy();
  RateDistortionChart* rd = m_window->chartsPanel()->rateDistortion();
  QVERIFY(lineNamed(rd, QStringLiteral("RVQ keys")) != nullptr);
  for (const RdMetric metric : {RdMetric::AttentionOutput, RdMetric::AttentionKl}) {
    rd->setMetric(metric);
    QLineSeries* rvq = lineNamed(rd, QStringLiteral("RVQ"));
    QVERIFY(rvq != nullptr);
    QCOMPARE(rvq->count(), kDepth);
    for (int k = 1; k <= kDepth; ++k) {
      const kvq::AttentionMethodResult total = study.attention.total("rvq", k);
      QVERIFY(close(rvq->at(k - 1).x(), total.bitsPerChannel));
      const double want =
          metric == RdMetric::AttentionKl ? total.total.meanKl() : total.total.outputRelativeError();
      QVERIFY(close(rvq->at(k - 1).y(), std::max(want, 1e-12)));
    }
    QLineSeries* kivi = lineNamed(rd, QStringLiteral("KIVI"));
    QVERIFY(kivi != nullptr);
    QCOMPARE(kivi->count(), static_cast<int>(study.baselineBits.size()));
    QVERIFY(lineNamed(rd, QStringLiteral("KIVI + window of 128")) != nullptr);
    // The ring, reused from the other measure's drawing, is still last in the legend.
    QVERIFY(qobject_cast<QScatterSeries*>(rd->series().back()) != nullptr);
  }
  QCOMPARE(rd->fileStem(), QStringLiteral("rate_distortion_attention_kl"));
  rd->setMetric(RdMetric::RelativeError);
  QVERIFY(lineNamed(rd, QStringLiteral("RVQ keys")) != nullptr);
}

void AttentionViewTest::evaluatedCodebooksAreASecondSeries() {
  // The codebooks of this very training, from a file: the second series equals the first.
  const QString path = m_dir.filePath(QStringLiteral("cb.h5"));
  kvq::writeCodebookFile(path.toStdString(), kvq::codebookFileFromStudy(*m_window->shownStudy()));
  m_window->evaluateCodebooks(path);
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::comparisonReady, 300000));
  QVERIFY(m_window->comparison() != nullptr);
  RateDistortionChart* rd = m_window->chartsPanel()->rateDistortion();
  rd->setMetric(RdMetric::AttentionOutput);
  QLineSeries* here = lineNamed(rd, QStringLiteral("RVQ (trained here)"));
  QLineSeries* file = lineNamed(rd, QStringLiteral("RVQ (from cb.h5)"));
  QVERIFY(here && file);
  QCOMPARE(file->count(), here->count());
  for (int i = 0; i < here->count(); ++i) QVERIFY(close(file->at(i).y(), here->at(i).y()));
  rd->setMetric(RdMetric::RelativeError);
  QVERIFY(lineNamed(rd, QStringLiteral("RVQ keys (from cb.h5)")) != nullptr);
  QVERIFY(
      lineNamed(m_window->chartsPanel()->attentionByLayer(), QStringLiteral("RVQ K = 3 KL (from cb.h5)")));
}

void AttentionViewTest::codebooksThatDoNotFitAreRefusedWithTheMismatch() {
  // Codebooks of a head_dim-16 dump, and codebooks of a layer this dump lacks.
  const QString narrow = m_dir.filePath(QStringLiteral("narrow.h5"));
  const QString elsewhere = m_dir.filePath(QStringLiteral("layer5.h5"));
  writeQueryDump(narrow, 16, {0});
  writeQueryDump(elsewhere, kD, {5});
  auto backend = kvq::makeCpuBackend();
  kvq::StudyOptions options;
  options.config = m_window->settingsPanel()->config();
  options.baselineBits = {};  // KIVI value groups of 32 do not fit head_dim 16
  for (const QString& dump : {narrow, elsewhere}) {
    const auto reader = kvq::DumpReader::open(dump.toStdString());
    const kvq::StudyResult s = kvq::runStudy(*reader, options, *backend);
    kvq::writeCodebookFile((dump + QStringLiteral(".cb.h5")).toStdString(), kvq::codebookFileFromStudy(s));
  }
  const StudyPtr before = m_window->comparison();
  m_presenter->errors.clear();
  m_window->evaluateCodebooks(narrow + QStringLiteral(".cb.h5"));
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::comparisonFailed, 120000));
  QCOMPARE(m_presenter->errors.size(), 1);
  QVERIFY2(m_presenter->errors.front().contains(
               QStringLiteral("head_dim: the codebooks were trained for head_dim 16, the dump has 32")),
           qPrintable(m_presenter->errors.front()));
  m_window->evaluateCodebooks(elsewhere + QStringLiteral(".cb.h5"));
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::comparisonFailed, 120000));
  QVERIFY2(m_presenter->errors.back().contains(QStringLiteral("layer 5: the dump")) &&
               m_presenter->errors.back().contains(
                   QStringLiteral("does not hold this layer (it holds layers 0, 1)")),
           qPrintable(m_presenter->errors.back()));
  QCOMPARE(m_window->comparison(), before);  // the earlier comparison stays
}

void AttentionViewTest::dumpWithoutQueriesShowsPlaceholders() {
  const QString path = synthDump(QStringLiteral("noq.h5"), 2, 32, 512);
  QVERIFY(openAndWait(path));
  QVERIFY(m_window->comparison() == nullptr);  // evaluated on the previous dump
  m_window->train();
  QVERIFY(waitForSignal(m_window.get(), &MainWindow::chartsUpdated, 300000));
  QVERIFY(!hasAttention(*m_window->shownStudy()));
  QVERIFY(m_window->chartsPanel()->attentionByLayer()->isPlaceholder());
  RateDistortionChart* rd = m_window->chartsPanel()->rateDistortion();
  rd->setMetric(RdMetric::AttentionKl);
  QVERIFY(rd->isPlaceholder());
  rd->setMetric(RdMetric::RelativeError);
  QVERIFY(!rd->isPlaceholder());
}

QTEST_MAIN(AttentionViewTest)
#include "test_attention_view.moc"
