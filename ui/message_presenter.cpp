#include "message_presenter.h"

#include <QMessageBox>

namespace kvq::ui {

void DialogPresenter::showError(QWidget* parent, const QString& title, const QString& text) {
  QMessageBox::critical(parent, title, text);
}

void DialogPresenter::showInfo(QWidget* parent, const QString& title, const QString& text) {
  QMessageBox::information(parent, title, text);
}

}  // namespace kvq::ui
