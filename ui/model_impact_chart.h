// Model impact chart: what the quantized cache costs the model (kvq ppl, docs/model.md) —
// perplexity (left axis) and mean KL divergence against the float32 cache (right axis, log)
// against bits per channel, for the studio's own run (RVQ at every depth, KIVI-2/3/4) and for
// any number of `kvq ppl --json` reports opened beside it. The reports' variants are drawn as one
// line per family, across files: a label without its depth, bits or budget ("rvq-s4-r16" and the
// RVQ codebook file, "alloc-s4-r16", "kivi-r128"), so the allocations of three budgets in three
// files are one line. The reference perplexity is a dotted line; the legend names the perplexity
// lines (series "RVQ", "kivi-r128", …; each KL line, "… KL", is the dashed one of the same
// colour). Hovering a point reads out its numbers. Every report shown must have been measured on
// the same tokens.
#pragma once

#include <optional>
#include <vector>

#include "chart_widget.h"
#include "kvq/model/perplexity.h"

namespace kvq::ui {

class ModelImpactChart : public ChartWidget {
  Q_OBJECT

 public:
  explicit ModelImpactChart(QWidget* parent = nullptr);
  // The studio's run; replaces the previous run and keeps the opened reports measured on the same
  // tokens. Returns how many opened reports it removed (measured on other tokens: another dump).
  int setReport(const kvq::PplReport& report);
  // Adds a report read from a file (named by `name` in the legend and read-outs). Returns "" or
  // why it was not added: measured on other tokens than the reports shown (another reference).
  QString addResults(const QString& name, const kvq::PplReport& report);
  // Removes the opened reports (the run stays).
  void clearResults();
  int resultCount() const { return static_cast<int>(m_results.size()); }

 private:
  struct Shown {
    QString name;  // "" for the run
    kvq::PplReport report;
  };
  struct Frame;      // the axes and ranges every line shares
  struct Line;       // the points of one perplexity line and its KL line
  void showEmpty();  // the placeholder: nothing run, nothing opened
  const kvq::PplReport* firstShown() const;
  std::vector<Line> lines() const;
  void render();
  void addLine(Frame& f, Line& line);

  std::optional<kvq::PplReport> m_run;
  std::vector<Shown> m_results;
};

}  // namespace kvq::ui
