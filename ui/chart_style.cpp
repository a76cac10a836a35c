#include "chart_style.h"

#include <QLogValueAxis>
#include <QValueAxis>

#include <cmath>

namespace kvq::ui {

QColor kindColor(kvq::Kind kind) {
  return kind == kvq::Kind::Keys ? QColor(0x1f, 0x77, 0xb4) : QColor(0xe6, 0x6a, 0x0a);
}

QColor baselineColor(kvq::Kind kind) {
  return kind == kvq::Kind::Keys ? QColor(0x7f, 0xa8, 0xd0) : QColor(0xf0, 0xb0, 0x7a);
}

QString kindLabel(kvq::Kind kind) {
  return kind == kvq::Kind::Keys ? QObject::tr("keys") : QObject::tr("values");
}

QColor groupColor(int group, int groups) {
  // Starts at purple and avoids reusing the keys/values blue and orange for 2 groups.
  const int hue = groups > 0 ? (group * 360 / groups + 280) % 360 : 280;
  return QColor::fromHsv(hue, 170, 200);
}

QValueAxis* makeValueAxis(const QString& title, const QString& format) {
  return styleValueAxis(new QValueAxis, title, format);
}

QLogValueAxis* makeLogAxis(const QString& title) {
  return styleLogAxis(new QLogValueAxis, title);
}

QValueAxis* styleValueAxis(QValueAxis* axis, const QString& title, const QString& format) {
  axis->setTitleText(title);
  axis->setLabelFormat(format);
  return axis;
}

QLogValueAxis* styleLogAxis(QLogValueAxis* axis, const QString& title) {
  axis->setTitleText(title);
  axis->setBase(10.0);
  axis->setLabelFormat(QStringLiteral("%.0e"));
  axis->setMinorTickCount(8);
  return axis;
}

void setLogRange(QLogValueAxis* axis, double lo, double hi) {
  lo = std::max(lo, 1e-12);
  hi = std::max(hi, lo * 10.0);
  axis->setRange(std::pow(10.0, std::floor(std::log10(lo))), std::pow(10.0, std::ceil(std::log10(hi))));
}

}  // namespace kvq::ui
