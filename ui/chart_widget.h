// ChartWidget — base of the chart tabs: a QChartView with a legend and a read-out
// line under it that hover handlers fill. Subclasses rebuild their series from
// data; series and axes are owned by the chart (Qt parent ownership).
//
// A redraw keeps what it can: between beginRedraw() and finishRedraw() a subclass asks
// for its series by key (reuseSeries) and its axes by orientation (reuseAxis) and gets
// the previous drawing's objects back when they fit, cleared. A redraw like the last
// one (a slider move) then changes points and ranges, not the scene: Qt Charts does
// not lay the chart out again, which was most of a slider move's time on the UI thread.
// Whatever the redraw did not ask for again goes at finishRedraw().
#pragma once

#include <QHash>
#include <QWidget>

#include <functional>

class QHBoxLayout;
class QLabel;
class QChart;
class QChartView;
class QXYSeries;
class QAbstractAxis;
class QAbstractSeries;
struct QMetaObject;

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
  // Starts a redraw that may reuse the chart's series and axes (see above).
  void beginRedraw(const QString& title);
  // The previous drawing's series of type S under key, cleared (points, bar sets), or a
  // new one; attach() it as a new one. Not to be deleted by the caller.
  template <class S>
  S* reuseSeries(const QString& key) {
    if (QAbstractSeries* s = claimSeries(key, S::staticMetaObject)) return static_cast<S*>(s);
    auto* s = new S;
    s->setObjectName(key);
    return s;
  }
  // The previous drawing's axis of type A along orientation, or a new one.
  template <class A>
  A* reuseAxis(Qt::Orientation orientation) {
    if (QAbstractAxis* a = claimAxis(orientation, A::staticMetaObject)) return static_cast<A*>(a);
    return new A;
  }
  // Deletes the series and axes this redraw did not ask for again.
  void finishRedraw();
  void setReadout(const QString& text);
  // Adds a control (a choice of what to plot) to a row above the chart; the widget
  // becomes a child of this chart.
  void addControl(QWidget* control);
  // Attaches s to the chart and to axes x and y (added to the chart if new); a
  // reused series already there is re-attached only if its axes changed.
  void attach(QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y);
  // Hover read-out: text(index of the nearest point) while the mouse is over s. A
  // reused series keeps one connection; the newest text function answers.
  void onHover(QXYSeries* s, std::function<QString(int index)> text);

 private:
  QAbstractSeries* claimSeries(const QString& key, const QMetaObject& type);
  QAbstractAxis* claimAxis(Qt::Orientation orientation, const QMetaObject& type);
  void deleteSeries(QAbstractSeries* s);

  QString m_fileStem;
  QChart* m_chart;
  QChartView* m_view;
  QLabel* m_readout;
  QLabel* m_placeholder;  // shown instead of the empty chart
  QLabel* m_notice;
  QHBoxLayout* m_controls = nullptr;  // created by the first addControl
  // Between beginRedraw and finishRedraw: the previous drawing's objects not asked for yet.
  QList<QAbstractSeries*> m_unclaimedSeries;
  QList<QAbstractAxis*> m_unclaimedAxes;
  // The series attached since beginRedraw, in order (the legend's order), with their axes.
  struct Attached {
    QAbstractSeries* series;
    QAbstractAxis* x;
    QAbstractAxis* y;
  };
  QList<Attached> m_attached;
  QHash<QXYSeries*, std::function<QString(int)>> m_hoverText;
};

// The index of the point of s nearest to p in screen-independent units (x and y
// scaled by the series' ranges); -1 when s is empty.
int nearestPointIndex(const QXYSeries* s, const QPointF& p);

}  // namespace kvq::ui
