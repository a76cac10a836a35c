// Writes a chart view to PNG, SVG or PDF (chosen by the file's suffix) through
// QSaveFile: the target appears complete or not at all. Throws kvq::Error(BadInput)
// naming the file on an unknown suffix or a failed write.
#pragma once

#include <QSize>
#include <QString>
#include <QStringList>

class QWidget;

namespace kvq::ui {

QStringList chartExportSuffixes();  // {"png", "svg", "pdf"}

// Renders widget (a QChartView or any widget) at size (pixels; PNG at 2× for sharp
// text) to path.
void exportWidgetImage(QWidget* widget, const QString& path, QSize size = QSize(1000, 620));

}  // namespace kvq::ui
