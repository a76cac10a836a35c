#include "chart_export.h"

#include <QFileInfo>
#include <QImage>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QWidget>

#include "kvq/base/error.h"

namespace kvq::ui {
namespace {

[[noreturn]] void fail(const QString& path, const QString& problem) {
  kvq::throwBadInput(path.toStdString(), "", problem.toStdString());
}

// Renders the widget at `size` regardless of its on-screen size: exports from a
// hidden tab or an offscreen run look the same as from a large window.
void renderAt(QWidget* widget, QPainter& painter, QSize size) {
  const QSize old = widget->size();
  widget->resize(size);
  widget->render(&painter, QPoint(), QRegion(), QWidget::DrawChildren);
  widget->resize(old);
}

}  // namespace

QStringList chartExportSuffixes() {
  return {QStringLiteral("png"), QStringLiteral("svg"), QStringLiteral("pdf")};
}

void exportWidgetImage(QWidget* widget, const QString& path, QSize size) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (!chartExportSuffixes().contains(suffix)) {
    fail(path, QStringLiteral("unknown image type '%1' (expected png, svg or pdf)").arg(suffix));
  }
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly)) fail(path, QStringLiteral("cannot write: ") + file.errorString());

  if (suffix == QLatin1String("png")) {
    constexpr qreal kScale = 2.0;
    QImage image(size * kScale, QImage::Format_ARGB32_Premultiplied);
    image.setDevicePixelRatio(kScale);
    image.fill(Qt::white);
    {
      QPainter painter(&image);
      painter.setRenderHint(QPainter::Antialiasing);
      renderAt(widget, painter, size);
    }
    if (!image.save(&file, "PNG")) fail(path, QStringLiteral("PNG encoding failed"));
  } else if (suffix == QLatin1String("svg")) {
    QSvgGenerator svg;
    svg.setOutputDevice(&file);
    svg.setSize(size);
    svg.setViewBox(QRect(QPoint(0, 0), size));
    svg.setTitle(widget->windowTitle());
    QPainter painter(&svg);
    renderAt(widget, painter, size);
  } else {
    QPdfWriter pdf(&file);
    pdf.setPageSize(QPageSize(QSizeF(size), QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setResolution(72);
    pdf.setTitle(widget->windowTitle());
    QPainter painter(&pdf);
    renderAt(widget, painter, size);
  }
  if (file.error() != QFileDevice::NoError) fail(path, QStringLiteral("write failed: ") + file.errorString());
  if (!file.commit()) fail(path, QStringLiteral("cannot finish writing: ") + file.errorString());
}

}  // namespace kvq::ui
