// Shared look of the charts: one colour per kind everywhere, axis factories.
#pragma once

#include <QColor>
#include <QString>

#include "kvq/dump/dump.h"

class QLogValueAxis;
class QValueAxis;

namespace kvq::ui {

QColor kindColor(kvq::Kind kind);          // keys blue, values orange
QColor baselineColor(kvq::Kind kind);      // a muted shade of the kind's colour
QString kindLabel(kvq::Kind kind);         // "keys", "values"
QColor groupColor(int group, int groups);  // distinct hues for channel groups

QValueAxis* makeValueAxis(const QString& title, const QString& format = QStringLiteral("%.3g"));
QLogValueAxis* makeLogAxis(const QString& title);
// Sets up an axis (a new or a reused one) as the two above do; returns it.
QValueAxis* styleValueAxis(QValueAxis* axis, const QString& title,
                           const QString& format = QStringLiteral("%.3g"));
QLogValueAxis* styleLogAxis(QLogValueAxis* axis, const QString& title);
// Widens [lo, hi] to whole decades (log axes) so the data never touches the frame.
void setLogRange(QLogValueAxis* axis, double lo, double hi);

}  // namespace kvq::ui
