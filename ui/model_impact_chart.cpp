#include "model_impact_chart.h"

#include <QChart>
#include <QFileInfo>
#include <QLegend>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QRegularExpression>
#include <QValueAxis>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "chart_style.h"

namespace kvq::ui {
namespace {

QString variantText(const QString& source, const kvq::VariantReport& v, double referencePpl) {
  return QObject::tr("%1%2: %3 bits/channel · perplexity %4 (%5%6 %) · KL %7 nats/token · top-1 %8 %")
      .arg(source.isEmpty() ? QString() : source + QStringLiteral(" · "))
      .arg(QString::fromStdString(v.label))
      .arg(v.bitsPerChannel, 0, 'f', 3)
      .arg(v.overall.perplexity(), 0, 'f', 3)
      .arg(v.overall.perplexity() >= referencePpl ? QStringLiteral("+") : QString())
      .arg(100.0 * (v.overall.perplexity() / referencePpl - 1.0), 0, 'f', 1)
      .arg(v.overall.meanKl(), 0, 'g', 4)
      .arg(100.0 * v.overall.top1Rate(), 0, 'f', 1);
}

// Colour of the i-th opened report (the run keeps the keys/values colours of the other charts).
QColor resultColor(int i) {
  static const QColor palette[] = {
      QColor(0x2c, 0xa0, 0x2c), QColor(0xd6, 0x27, 0x28), QColor(0x94, 0x67, 0xbd), QColor(0x8c, 0x56, 0x4b),
      QColor(0xe3, 0x77, 0xc2), QColor(0x17, 0xbe, 0xcf), QColor(0xbc, 0xbd, 0x22), QColor(0x7f, 0x7f, 0x7f)};
  return palette[static_cast<size_t>(i) % (sizeof palette / sizeof palette[0])];
}

}  // namespace

struct ModelImpactChart::Frame {
  QValueAxis* x;
  QValueAxis* ppl;
  QLogValueAxis* kl;
  double refPpl;
  double maxBits = 1, pplHi = 0, klLo = std::numeric_limits<double>::infinity(), klHi = 0;
};

ModelImpactChart::ModelImpactChart(QWidget* parent)
    : ChartWidget(tr("Model impact"), QStringLiteral("model_impact"), parent) {
  showEmpty();
}

void ModelImpactChart::showEmpty() {
  showPlaceholder(
      tr("Choose the dump's GGUF model and run it, or open kvq ppl --json reports, to see what "
         "the quantized cache costs"));
}

namespace {

// Whether two reports were measured on the same tokens: the same count and reference perplexity.
bool sameTokens(const kvq::PplReport& a, const kvq::PplReport& b) {
  const double pa = a.reference.perplexity(), pb = b.reference.perplexity();
  return a.reference.tokens == b.reference.tokens && std::abs(pa - pb) <= 1e-6 * pa;
}

}  // namespace

int ModelImpactChart::setReport(const kvq::PplReport& report) {
  m_run = report;
  const auto before = m_results.size();
  std::erase_if(m_results, [&](const Shown& s) { return !sameTokens(report, s.report); });
  render();
  return static_cast<int>(before - m_results.size());
}

const kvq::PplReport* ModelImpactChart::firstShown() const {
  if (m_run) return &*m_run;
  return m_results.empty() ? nullptr : &m_results.front().report;
}

QString ModelImpactChart::addResults(const QString& name, const kvq::PplReport& report) {
  if (const kvq::PplReport* shown = firstShown()) {
    const double a = shown->reference.perplexity(), b = report.reference.perplexity();
    if (!sameTokens(*shown, report)) {
      return tr("%1 was measured on other tokens (reference perplexity %2 over %3 tokens; the chart shows "
                "%4 over %5): perplexities of different texts cannot share one chart")
          .arg(name)
          .arg(b, 0, 'f', 3)
          .arg(report.reference.tokens)
          .arg(a, 0, 'f', 3)
          .arg(shown->reference.tokens);
    }
  }
  m_results.push_back({name, report});
  render();
  return {};
}

void ModelImpactChart::clearResults() {
  m_results.clear();
  if (m_run) {
    render();
  } else {
    showEmpty();
  }
}

struct ModelImpactChart::Line {
  QString name;
  QColor color;
  std::vector<std::pair<const kvq::VariantReport*, QString>> points;  // variant, its report's name
};

namespace {

// The line a report's variant belongs to: its label without depth, bits or budget; RVQ depths
// also by their codebook file (the same label over other codebooks is another line).
QString familyOf(const kvq::VariantReport& v, const kvq::PplReport& report) {
  QString label = QString::fromStdString(v.label);
  label.replace(QRegularExpression(QStringLiteral("^(rvq|kivi)-\\d+")), QStringLiteral("\\1"));
  label.replace(QRegularExpression(QStringLiteral("^alloc-[0-9.]+b")), QStringLiteral("alloc"));
  if (label.startsWith(QStringLiteral("rvq")) && !report.codebookPath.empty()) {
    label +=
        QStringLiteral(" · ") + QFileInfo(QString::fromStdString(report.codebookPath)).completeBaseName();
  }
  return label;
}

bool drawn(const kvq::VariantReport& v) {
  return v.spec.kind != kvq::CacheVariantKind::Identity;
}

}  // namespace

std::vector<ModelImpactChart::Line> ModelImpactChart::lines() const {
  std::vector<Line> out;
  if (m_run) {
    for (const bool rvq : {true, false}) {
      Line line{rvq ? tr("RVQ") : tr("KIVI"), kindColor(rvq ? kvq::Kind::Keys : kvq::Kind::Values), {}};
      for (const kvq::VariantReport& v : m_run->variants) {
        if (drawn(v) && (v.spec.kind == kvq::CacheVariantKind::Rvq) == rvq)
          line.points.emplace_back(&v, QString());
      }
      if (!line.points.empty()) out.push_back(std::move(line));
    }
  }
  std::vector<Line> opened;
  for (const Shown& shown : m_results) {
    for (const kvq::VariantReport& v : shown.report.variants) {
      if (!drawn(v)) continue;
      const QString family = familyOf(v, shown.report);
      auto it = std::find_if(opened.begin(), opened.end(), [&](const Line& l) { return l.name == family; });
      if (it == opened.end()) {
        opened.push_back({family, resultColor(static_cast<int>(opened.size())), {}});
        it = opened.end() - 1;
      }
      it->points.emplace_back(&v, shown.name);
    }
  }
  out.insert(out.end(), std::make_move_iterator(opened.begin()), std::make_move_iterator(opened.end()));
  return out;
}

void ModelImpactChart::addLine(Frame& f, Line& line) {
  std::sort(line.points.begin(), line.points.end(),
            [](const auto& a, const auto& b) { return a.first->bitsPerChannel < b.first->bitsPerChannel; });
  auto* pSeries = new QLineSeries;
  auto* kSeries = new QLineSeries;
  pSeries->setName(line.name);  // the legend's entry: the KL line is hidden from it
  kSeries->setName(tr("%1 KL").arg(line.name));
  pSeries->setColor(line.color);
  QPen dashed(line.color);
  dashed.setStyle(Qt::DashLine);
  dashed.setWidth(2);
  kSeries->setPen(dashed);
  auto texts = std::make_shared<std::vector<QString>>();
  for (const auto& [v, source] : line.points) {
    // KL 0 at the log axis's floor; an infinite KL (read from a report) at a ceiling far above any
    // real one, its read-out still says inf.
    const double klValue = std::clamp(v->overall.meanKl(), 1e-9, 1e3);
    pSeries->append(v->bitsPerChannel, v->overall.perplexity());
    kSeries->append(v->bitsPerChannel, klValue);
    texts->push_back(variantText(source, *v, f.refPpl));
    f.maxBits = std::max(f.maxBits, v->bitsPerChannel);
    f.pplHi = std::max(f.pplHi, v->overall.perplexity());
    f.klLo = std::min(f.klLo, klValue);
    f.klHi = std::max(f.klHi, klValue);
  }
  for (QLineSeries* s : {pSeries, kSeries}) {
    s->setPointsVisible(true);
    s->setMarkerSize(6);
  }
  attach(pSeries, f.x, f.ppl);
  attach(kSeries, f.x, f.kl);
  for (QLegendMarker* m : chart()->legend()->markers(kSeries)) m->setVisible(false);
  onHover(pSeries, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
  onHover(kSeries, [texts](int i) { return (*texts)[static_cast<size_t>(i)]; });
}

void ModelImpactChart::render() {
  const kvq::PplReport* first = firstShown();
  if (first == nullptr) return;
  resetChart(tr("Perplexity (solid) and KL (dashed) · %1, %2 tokens%3")
                 .arg(QString::fromStdString(first->modelName))
                 .arg(first->reference.tokens)
                 .arg(m_results.empty() ? QString() : tr(", %n report(s)", "", resultCount())));
  Frame f{makeValueAxis(tr("bits per channel"), QStringLiteral("%.2f")),
          makeValueAxis(tr("perplexity"), QStringLiteral("%.2f")),
          makeLogAxis(tr("mean KL(p_ref ‖ p_q), nats")), first->reference.perplexity()};
  f.pplHi = f.refPpl;
  chart()->addAxis(f.kl, Qt::AlignRight);  // before attach(), which puts new y axes on the left
  for (Line& line : lines()) addLine(f, line);
  auto* reference = new QLineSeries;
  reference->setName(tr("reference %1").arg(f.refPpl, 0, 'f', 3));
  QPen dotted(Qt::darkGray);
  dotted.setStyle(Qt::DotLine);
  reference->setPen(dotted);
  reference->append(0, f.refPpl);
  reference->append(f.maxBits * 1.08, f.refPpl);
  attach(reference, f.x, f.ppl);
  f.x->setRange(0, f.maxBits * 1.08);
  f.x->applyNiceNumbers();
  f.ppl->setRange(f.refPpl * 0.98, f.pplHi * 1.02);
  if (f.klHi > 0) setLogRange(f.kl, f.klLo, f.klHi);
  setReadout(tr("reference perplexity %1 over %2 tokens · hover over a point for its numbers")
                 .arg(f.refPpl, 0, 'f', 3)
                 .arg(first->reference.tokens));
}

}  // namespace kvq::ui
