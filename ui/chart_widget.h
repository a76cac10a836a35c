// ChartWidget — base of the chart tabs: a QChartView with a legend and a read-out
// line under it that hover handlers fill. Subclasses rebuild their series from
// data; series and axes are owned by the chart (Qt parent ownership).
#pragma once

#include <QWidget>

#include <functional>

class QHBoxLayout;
class QLabel;
class QChart;
class QChartView;
class QXYSeries;
class QAbstractAxis;
class QAbstractSeries;

namespace kvq::ui {

class ChartWidget : public QWidget {
  Q_OBJECT

 public:
  // fileStem: short name for exported files, e.g. "rate_distortion".
  ChartWidget(const QString& title, const QString& fileStem, QWidget* parent = nullptr);

  QChart* chart() const { return m_chart; }
  QChartView* view() const { return m_view; }
  QString readout() const;
  // Short name for exported files; a chart whose file depends on what it shows overrides it.
  virtual QString fileStem() const { return m_fileStem; }
  // The chart's series (tests count their points).
  QList<QAbstractSeries*> series() const;
  // Shows text in place of an empty chart.
  void showPlaceholder(const QString& text);
  // A line above the chart about what it shows ("C = 4096 is training in the
  // background…"); empty hides it.
  void setNotice(const QString& text);
  QString notice() const;
  bool isPlaceholder() const;

 protected:
  // Removes every series and axis (deleting them).
  void resetChart(const QString& title);
  void setReadout(const QString& text);
  // Adds a control (a choice of what to plot) to a row above the chart; the widget
  // becomes a child of this chart.
  void addControl(QWidget* control);
  // Attaches s to the chart and to axes x and y (added to the chart if new).
  void attach(QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y);
  // Hover read-out: text(index of the nearest point) while the mouse is over s.
  void onHover(QXYSeries* s, std::function<QString(int index)> text);

 private:
  QString m_fileStem;
  QChart* m_chart;
  QChartView* m_view;
  QLabel* m_readout;
  QLabel* m_placeholder;  // shown instead of the empty chart
  QLabel* m_notice;
  QHBoxLayout* m_controls = nullptr;  // created by the first addControl
};

// The index of the point of s nearest to p in screen-independent units (x and y
// scaled by the series' ranges); -1 when s is empty.
int nearestPointIndex(const QXYSeries* s, const QPointF& p);

}  // namespace kvq::ui
