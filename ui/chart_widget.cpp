#include "chart_widget.h"

#include <QChart>
#include <QChartView>
#include <QHBoxLayout>
#include <QLabel>
#include <QLegend>
#include <QVBoxLayout>
#include <QXYSeries>

#include <cmath>
#include <limits>

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
  m_chart->removeAllSeries();  // deletes them
  const QList<QAbstractAxis*> axes = m_chart->axes();
  for (QAbstractAxis* axis : axes) {
    m_chart->removeAxis(axis);
    delete axis;
  }
  m_chart->setTitle(title);
  m_placeholder->setVisible(false);
  m_view->setVisible(true);
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
  m_chart->addSeries(s);  // the chart takes ownership
  if (!m_chart->axes().contains(x)) m_chart->addAxis(x, Qt::AlignBottom);
  if (!m_chart->axes().contains(y)) m_chart->addAxis(y, Qt::AlignLeft);
  s->attachAxis(x);
  s->attachAxis(y);
}

void ChartWidget::onHover(QXYSeries* s, std::function<QString(int)> text) {
  connect(s, &QXYSeries::hovered, this, [this, s, text = std::move(text)](const QPointF& p, bool state) {
    if (!state) return;
    const int i = nearestPointIndex(s, p);
    if (i >= 0) setReadout(text(i));
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
