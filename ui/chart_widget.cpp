#include "chart_widget.h"

#include <QAbstractBarSeries>
#include <QChart>
#include <QChartView>
#include <QHBoxLayout>
#include <QLabel>
#include <QLegend>
#include <QVBoxLayout>
#include <QXYSeries>

#include <cmath>
#include <limits>
#include <utility>

namespace kvq::ui {

ChartWidget::ChartWidget(const QString& title, const QString& fileStem, QWidget* parent)
    : QWidget(parent),
      m_fileStem(fileStem),
      m_chart(new QChart),
      m_view(new QChartView(this)),
      m_readout(new QLabel(this)),
      m_placeholder(new QLabel(this)),
      m_notice(new QLabel(this)) {
  setWindowTitle(title);
  m_chart->setTitle(title);
  m_chart->legend()->setAlignment(Qt::AlignBottom);
  m_chart->setAnimationOptions(QChart::NoAnimation);  // charts follow sliders: no lag
  m_view->setChart(m_chart);                          // the view owns the chart
  m_view->setRenderHint(QPainter::Antialiasing);
  m_readout->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_readout->setMinimumHeight(m_readout->fontMetrics().height() + 6);
  m_readout->setText(tr("Hover over a point for its values"));
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(2, 2, 2, 2);
  layout->setSpacing(2);
  m_placeholder->setAlignment(Qt::AlignCenter);
  m_placeholder->setWordWrap(true);
  m_placeholder->setStyleSheet(QStringLiteral("color: palette(mid); font-size: 15pt;"));
  m_placeholder->setVisible(false);
  m_notice->setObjectName(QStringLiteral("chartNotice"));
  m_notice->setTextFormat(Qt::PlainText);
  m_notice->setAlignment(Qt::AlignCenter);
  m_notice->setStyleSheet(QStringLiteral("QLabel { background: #fff3d6; color: #6b4500; padding: 3px; }"));
  m_notice->setVisible(false);
  layout->addWidget(m_notice);
  layout->addWidget(m_view, 1);
  layout->addWidget(m_placeholder, 1);
  layout->addWidget(m_readout);
}

QString ChartWidget::readout() const {
  return m_readout->text();
}

QList<QAbstractSeries*> ChartWidget::series() const {
  return m_chart->series();
}

void ChartWidget::showPlaceholder(const QString& text) {
  resetChart(windowTitle());
  m_view->setVisible(false);
  m_placeholder->setText(text);
  m_placeholder->setVisible(true);
  setReadout(QString());
}

void ChartWidget::setNotice(const QString& text) {
  if (text == m_notice->text()) return;
  m_notice->setText(text);
  m_notice->setVisible(!text.isEmpty());
}

QString ChartWidget::notice() const {
  return m_notice->text();
}

bool ChartWidget::isPlaceholder() const {
  return m_placeholder->isVisibleTo(this);
}

void ChartWidget::resetChart(const QString& title) {
  beginRedraw(title);
  finishRedraw();
}

void ChartWidget::beginRedraw(const QString& title) {
  m_unclaimedSeries = m_chart->series();
  m_unclaimedAxes = m_chart->axes();
  m_attached.clear();
  m_chart->setTitle(title);
  m_placeholder->setVisible(false);
  m_view->setVisible(true);
}

QAbstractSeries* ChartWidget::claimSeries(const QString& key, const QMetaObject& type) {
  for (qsizetype i = 0; i < m_unclaimedSeries.size(); ++i) {
    QAbstractSeries* s = m_unclaimedSeries[i];
    if (s->objectName() != key || s->metaObject() != &type) continue;
    m_unclaimedSeries.removeAt(i);
    if (auto* xy = qobject_cast<QXYSeries*>(s)) xy->clear();
    if (auto* bars = qobject_cast<QAbstractBarSeries*>(s)) bars->clear();  // deletes the sets
    return s;
  }
  return nullptr;
}

QAbstractAxis* ChartWidget::claimAxis(Qt::Orientation orientation, const QMetaObject& type) {
  for (qsizetype i = 0; i < m_unclaimedAxes.size(); ++i) {
    QAbstractAxis* a = m_unclaimedAxes[i];
    if (a->orientation() != orientation || a->metaObject() != &type) continue;
    m_unclaimedAxes.removeAt(i);
    return a;
  }
  return nullptr;
}

void ChartWidget::deleteSeries(QAbstractSeries* s) {
  if (auto* xy = qobject_cast<QXYSeries*>(s)) m_hoverText.remove(xy);
  m_chart->removeSeries(s);
  delete s;
}

void ChartWidget::finishRedraw() {
  // Series first: a series still attached to an axis being removed would be redrawn.
  for (QAbstractSeries* s : std::exchange(m_unclaimedSeries, {})) deleteSeries(s);
  for (QAbstractAxis* axis : std::exchange(m_unclaimedAxes, {})) {
    m_chart->removeAxis(axis);
    delete axis;
  }
  // Reused series keep their place in the chart: when new ones came between them (another
  // y-axis measure, a comparison), put all back in drawing order, which the legend follows.
  QList<QAbstractSeries*> order;
  for (const Attached& a : m_attached) order << a.series;
  if (m_chart->series() == order) return;
  for (const Attached& a : m_attached) m_chart->removeSeries(a.series);  // the chart lets go of it
  for (const Attached& a : m_attached) {
    m_chart->addSeries(a.series);
    a.series->attachAxis(a.x);
    a.series->attachAxis(a.y);
  }
}

void ChartWidget::setReadout(const QString& text) {
  m_readout->setText(text);
}

void ChartWidget::addControl(QWidget* control) {
  if (m_controls == nullptr) {
    m_controls = new QHBoxLayout;
    m_controls->setContentsMargins(4, 0, 4, 0);
    m_controls->addStretch(1);
    static_cast<QVBoxLayout*>(layout())->insertLayout(0, m_controls);
  }
  m_controls->insertWidget(m_controls->count() - 1, control);
}

void ChartWidget::attach(QAbstractSeries* s, QAbstractAxis* x, QAbstractAxis* y) {
  if (s->chart() != m_chart) m_chart->addSeries(s);  // the chart takes ownership
  const QList<QAbstractAxis*> axes = m_chart->axes();
  if (!axes.contains(x)) m_chart->addAxis(x, Qt::AlignBottom);
  if (!axes.contains(y)) m_chart->addAxis(y, Qt::AlignLeft);
  const QList<QAbstractAxis*> attached = s->attachedAxes();
  for (QAbstractAxis* axis : attached) {
    if (axis != x && axis != y) s->detachAxis(axis);
  }
  if (!attached.contains(x)) s->attachAxis(x);
  if (!attached.contains(y)) s->attachAxis(y);
  m_attached.append({s, x, y});
}

void ChartWidget::onHover(QXYSeries* s, std::function<QString(int)> text) {
  const bool connected = m_hoverText.contains(s);
  m_hoverText.insert(s, std::move(text));
  if (connected) return;
  connect(s, &QXYSeries::hovered, this, [this, s](const QPointF& p, bool state) {
    if (!state) return;
    const int i = nearestPointIndex(s, p);
    const auto found = m_hoverText.constFind(s);
    if (i >= 0 && found != m_hoverText.constEnd()) setReadout((*found)(i));
  });
}

int nearestPointIndex(const QXYSeries* s, const QPointF& p) {
  const QList<QPointF> points = s->points();
  if (points.isEmpty()) return -1;
  double minX = points.front().x(), maxX = minX, minY = points.front().y(), maxY = minY;
  for (const QPointF& q : points) {
    minX = std::min(minX, q.x());
    maxX = std::max(maxX, q.x());
    minY = std::min(minY, q.y());
    maxY = std::max(maxY, q.y());
  }
  const double sx = maxX > minX ? maxX - minX : 1.0;
  const double sy = maxY > minY ? maxY - minY : 1.0;
  int best = -1;
  double bestDistance = std::numeric_limits<double>::infinity();
  for (int i = 0; i < points.size(); ++i) {
    const double dx = (points[i].x() - p.x()) / sx;
    const double dy = (points[i].y() - p.y()) / sy;
    const double d = dx * dx + dy * dy;
    if (d < bestDistance) {
      bestDistance = d;
      best = i;
    }
  }
  return best;
}

}  // namespace kvq::ui
