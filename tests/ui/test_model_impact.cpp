// The Model impact tab: the model path is remembered; Run evaluates the chosen GGUF model over
// the open dump's tokens on the job queue and fills the chart (perplexity and KL against bits per
// channel); a model that cannot run shows the reader's message and keeps the earlier chart; the
// chart exports like every chart. The exact tokens set in the view reach the run; `kvq ppl --json`
// reports open beside the run (one measured on other tokens, or not a report, is named in a dialog),
// and Clear results removes them. A codebook file's bit allocation opens into the allocation
// chart (keys and values bars per layer); a file without one shows a message and keeps it.
#include <QBarSeries>
#include <QBarSet>
#include <QFile>
#include <QFileInfo>
#include <QLineSeries>
#include <QPushButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <memory>
#include <random>

#include "allocation_chart.h"
#include "charts_panel.h"
#include "job_queue.h"
#include "job_tags.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/perplexity.h"
#include "kvq/model/ppl_report.h"
#include "main_window.h"
#include "message_presenter.h"
#include "model_impact_chart.h"
#include "model_impact_view.h"
#include "ui_test_util.h"
#include "window_fixture.h"

using namespace kvq::ui;
using kvq::ui::test::waitForSignal;
using kvq::ui::test::waitUntil;

namespace {

const QString kData = QStringLiteral(KVQ_TEST_DATA_DIR);

// A dump shaped like tests/data/gguf/tiny_llama.gguf (1 layer, 1 kv head, head_dim 4, vocab 16).
void writeTinyDump(const QString& path) {
  const int64_t tokens = 64;
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  kvq::Slab keys, values;
  for (kvq::Slab* s : {&keys, &values}) {
    s->tokens = tokens;
    s->heads = 1;
    s->dim = 4;
    s->data.resize(tokens * 4);
    for (float& x : s->data) x = normal(rng);
  }
  std::vector<int32_t> ids(tokens);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % 16);
  kvq::DumpHeader h;
  h.model = "tiny";
  h.numLayers = 1;
  h.numKvHeads = 1;
  h.headDim = 4;
  h.tokens = tokens;
  auto w = kvq::DumpWriter::create(path.toStdString(), h);
  w->writeLayer(0, keys, values);
  w->writeTokenIds(ids);
  w->writeSequenceStarts({0, 32});
  w->commit();
}

void writeText(const QString& path, const std::string& text) {
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly));
  f.write(text.data(), static_cast<qint64>(text.size()));
}

QLineSeries* lineNamed(ChartWidget* chart, const QString& name) {
  for (QAbstractSeries* s : chart->series()) {
    if (s->name() == name) return qobject_cast<QLineSeries*>(s);
  }
  return nullptr;
}

// A codebook file of two layers (C = 4, g = 2, K = 3, head_dim 4), with an allocation or without.
void writeAllocationFile(const QString& path, bool withAllocation) {
  kvq::CodebookFile f;
  f.config = kvq::presetConfig("paper");
  f.config.codebookSize = 4;
  f.config.groupSize = 2;
  f.config.depth = 3;
  f.headDim = 4;
  f.numKvHeads = 1;
  kvq::CacheAllocation a;
  a.budget = 6.0;
  a.bitsPerChannel = 5.75;
  a.method = "exact";
  a.contextTokens = 2048;
  for (int layer : {0, 1}) {
    for (kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
      f.sets.push_back({layer, kind, {0, 1, 2, 3}, {}, {kvq::Codebooks(3, 4, 2)}, {}});
      const int depth = 1 + layer + (kind == kvq::Kind::Values ? 1 : 0);  // 1 2 / 2 3
      a.layers.push_back(layer);
      a.kinds.push_back(kind);
      a.depths.push_back(depth);
      a.bits.push_back(depth + 4.0);
      a.losses.push_back(1.0 / depth);
    }
  }
  if (withAllocation) f.allocation = a;
  kvq::writeCodebookFile(path.toStdString(), f);
}

}  // namespace

class ModelImpactTest : public QObject, kvq::ui::test::WindowFixture {
  Q_OBJECT

 private slots:
  void initTestCase() {
    kvq::ui::test::initTestApplication(QStringLiteral("test_model_impact"));
    QVERIFY(m_dir.isValid());
    m_dump = m_dir.filePath(QStringLiteral("tiny.h5"));
    writeTinyDump(m_dump);
    createWindow();
  }

  void cleanupTestCase() { m_window.reset(); }

  void modelPathIsRemembered() {
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    view->setModelPath(kData + QStringLiteral("/gguf/tiny_llama.gguf"));
    ModelImpactView other;
    QCOMPARE(other.modelPath(), kData + QStringLiteral("/gguf/tiny_llama.gguf"));
  }

  void runFillsTheChart() {
    QVERIFY(openAndWait(m_dump));
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    QVERIFY(view->chart()->isPlaceholder());
    QVERIFY(view->runButton()->isEnabled());
    view->runButton()->click();
    QVERIFY(waitUntil([&] { return !view->chart()->isPlaceholder(); }));
    QVERIFY2(m_presenter->errors.isEmpty(), qPrintable(m_presenter->errors.join('\n')));
    // No study trained: KIVI-2/3/4 at every layer, bits b + 16/n_t + 16/n_c = b + 4 + 4 (n = 4).
    QLineSeries* ppl = lineNamed(view->chart(), QStringLiteral("KIVI"));
    QLineSeries* kl = lineNamed(view->chart(), QStringLiteral("KIVI KL"));
    QVERIFY(ppl != nullptr && kl != nullptr);
    QCOMPARE(ppl->count(), 3);
    QCOMPARE(ppl->at(0).x(), 2.0 + 16.0 / 32 + 16.0 / 4);  // keys n_t = 32, values n_c = head_dim 4
    QVERIFY(kl->at(0).y() > kl->at(2).y());                // 2 bits lose more than 4 bits
    QVERIFY(view->chart()->readout().contains(QStringLiteral("reference perplexity")));
    QVERIFY(!QTest::qWaitFor([&] { return m_window->jobs()->isPending(job_tag::kModel); }, 50));
  }

  void failedRunKeepsTheChart() {
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    const int before = lineNamed(view->chart(), QStringLiteral("KIVI"))->count();
    view->setModelPath(kData + QStringLiteral("/gguf/malformed/unknown_tensor_type.gguf"));
    view->runButton()->click();
    QVERIFY(waitUntil([&] { return !m_presenter->errors.isEmpty(); }));
    QVERIFY(m_presenter->errors.join('\n').contains(QStringLiteral("unknown tensor type 99")));
    QCOMPARE(lineNamed(view->chart(), QStringLiteral("KIVI"))->count(), before);
    view->setModelPath(kData + QStringLiteral("/gguf/tiny_llama.gguf"));
  }

  void allocationOpensIntoItsChart() {
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    QVERIFY(view->allocationChart()->isPlaceholder());
    const QString with = m_dir.filePath(QStringLiteral("alloc.h5"));
    const QString without = m_dir.filePath(QStringLiteral("plain.h5"));
    writeAllocationFile(with, true);
    writeAllocationFile(without, false);
    const qsizetype errorsBefore = m_presenter->errors.size();
    emit view->allocationRequested(with);
    QVERIFY(!view->allocationChart()->isPlaceholder());
    auto* bars = qobject_cast<QBarSeries*>(view->allocationChart()->series().value(0));
    QVERIFY(bars != nullptr);
    QCOMPARE(bars->count(), 2);  // keys, values
    QCOMPARE(bars->barSets()[0]->label(), QStringLiteral("keys"));
    QCOMPARE(bars->barSets()[0]->at(1), 6.0);  // layer 1 keys: depth 2 -> 6 bits
    QCOMPARE(bars->barSets()[1]->at(1), 7.0);  // layer 1 values: depth 3
    QVERIFY(view->allocationChart()->readout().contains(QStringLiteral("4 quantizers")));
    emit view->allocationRequested(without);
    QCOMPARE(m_presenter->errors.size(), errorsBefore + 1);
    QVERIFY(m_presenter->errors.last().contains(QStringLiteral("no bit allocation")));
    QCOMPARE(qobject_cast<QBarSeries*>(view->allocationChart()->series().value(0))->barSets()[1]->at(1), 7.0);
  }

  void exactTokensReachTheRun() {
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    auto* kiviWindow = view->findChild<QSpinBox*>(QStringLiteral("kiviWindow"));
    QVERIFY(kiviWindow != nullptr);
    kiviWindow->setValue(64);  // longer than each 32-token sequence: KIVI keeps every token exact
    const qsizetype errorsBefore = m_presenter->errors.size();
    view->runButton()->click();
    QVERIFY(waitUntil([&] {
      QLineSeries* ppl = lineNamed(view->chart(), QStringLiteral("KIVI"));
      return ppl != nullptr && ppl->at(0).x() == 16.0;
    }));
    QCOMPARE(m_presenter->errors.size(), errorsBefore);
    QLineSeries* kl = lineNamed(view->chart(), QStringLiteral("KIVI KL"));
    for (int i = 0; i < 3; ++i) QCOMPARE(kl->at(i).y(), 1e-9);  // KL exactly 0, drawn at the floor
    kiviWindow->setValue(0);
    QVERIFY(!QTest::qWaitFor([&] { return m_window->jobs()->isPending(job_tag::kModel); }, 50));
  }

  void reportsOpenBesideTheRun() {
    ModelImpactView* view = m_window->chartsPanel()->modelImpact();
    // Two kvq ppl reports on the same dump and model, KIVI-2 in one and KIVI-3 in the other.
    const auto model = kvq::loadDecoderModel((kData + QStringLiteral("/gguf/tiny_llama.gguf")).toStdString());
    const auto dump = kvq::DumpReader::open(m_dump.toStdString());
    kvq::PplOptions options;
    kvq::CacheVariantSpec kivi;
    kivi.kind = kvq::CacheVariantKind::Kivi;
    kivi.channelGroup = 4;
    for (int bits : {3, 2}) {
      kivi.bits = bits;
      options.variants.push_back(kivi);
    }
    kvq::PplReport report = kvq::evaluatePerplexity(*model, *dump, options);
    const kvq::PplReport both = report;
    report.variants = {both.variants[0]};
    const QString kivi3 = m_dir.filePath(QStringLiteral("kivi3.json"));
    writeText(kivi3, kvq::pplReportJson(report));
    report.variants = {both.variants[1]};
    const QString kivi2 = m_dir.filePath(QStringLiteral("kivi2.json"));
    writeText(kivi2, kvq::pplReportJson(report));
    report.reference.nll *= 1.01;  // another text
    const QString other = m_dir.filePath(QStringLiteral("other.json"));
    writeText(other, kvq::pplReportJson(report));
    const QString broken = m_dir.filePath(QStringLiteral("broken.json"));
    writeText(broken, "{\"dump\": 1}");
    const qsizetype errorsBefore = m_presenter->errors.size();
    emit view->resultsRequested({kivi3, other, kivi2, broken});
    // One line for the KIVI family across both files, in order of bits.
    QLineSeries* opened = lineNamed(view->chart(), QStringLiteral("kivi"));
    QVERIFY(opened != nullptr);
    QCOMPARE(opened->count(), 2);
    QCOMPARE(opened->at(0).x(), 2.0 + 16.0 / 32 + 16.0 / 4);
    QCOMPARE(opened->at(0).y(), both.variants[1].overall.perplexity());
    QCOMPARE(opened->at(1).x(), 3.0 + 16.0 / 32 + 16.0 / 4);
    QCOMPARE(opened->at(1).y(), both.variants[0].overall.perplexity());
    QCOMPARE(view->chart()->resultCount(), 2);
    QVERIFY(lineNamed(view->chart(), QStringLiteral("KIVI")) != nullptr);  // the run stays
    QCOMPARE(m_presenter->errors.size(), errorsBefore + 1);                // one dialog naming both refusals
    QVERIFY(m_presenter->errors.last().contains(QStringLiteral("other was measured on other tokens")));
    QVERIFY(m_presenter->errors.last().contains(QStringLiteral("broken.json")));
    QVERIFY(m_presenter->errors.last().contains(QStringLiteral("/dump: not a string")));
    view->chart()->clearResults();
    QVERIFY(lineNamed(view->chart(), QStringLiteral("kivi")) == nullptr);
    QVERIFY(lineNamed(view->chart(), QStringLiteral("KIVI")) != nullptr);
  }

  // A run on another dump drops the opened reports it cannot share a chart with, and says how many.
  void aRunOnOtherTokensRemovesTheOpenedReports() {
    auto report = [](double nll) {
      kvq::PplReport r;
      r.reference.tokens = 100;
      r.reference.nll = nll;
      kvq::VariantReport v;
      v.spec.kind = kvq::CacheVariantKind::Kivi;
      v.label = "kivi-2";
      v.bitsPerChannel = 3;
      v.overall.tokens = 100;
      v.overall.nll = nll * 1.1;
      r.variants = {v};
      return r;
    };
    ModelImpactChart chart;
    QVERIFY(chart.addResults(QStringLiteral("a"), report(250.0)).isEmpty());
    QVERIFY(chart.addResults(QStringLiteral("b"), report(250.0)).isEmpty());
    QCOMPARE(chart.setReport(report(250.0)), 0);  // the same tokens: both stay
    QCOMPARE(chart.resultCount(), 2);
    QCOMPARE(chart.setReport(report(260.0)), 2);  // another text
    QCOMPARE(chart.resultCount(), 0);
    QVERIFY(lineNamed(&chart, QStringLiteral("kivi")) == nullptr);
    QVERIFY(lineNamed(&chart, QStringLiteral("KIVI")) != nullptr);
  }

  void exportsLikeEveryChart() {
    QVERIFY(m_window->exportAllCharts(m_dir.path()));
    QVERIFY(QFileInfo(m_dir.filePath(QStringLiteral("model_impact.png"))).size() > 1000);
    QVERIFY(QFileInfo(m_dir.filePath(QStringLiteral("bit_allocation.png"))).size() > 1000);
  }

 private:
  QString m_dump;
};

QTEST_MAIN(ModelImpactTest)
#include "test_model_impact.moc"
