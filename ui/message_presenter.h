// MessagePresenter — the one place the GUI shows modal messages. Tests install a
// recording presenter so they can assert the text instead of blocking on a box.
#pragma once

#include <QString>
#include <QStringList>

class QWidget;

namespace kvq::ui {

class MessagePresenter {
 public:
  virtual ~MessagePresenter() = default;
  virtual void showError(QWidget* parent, const QString& title, const QString& text) = 0;
  virtual void showInfo(QWidget* parent, const QString& title, const QString& text) = 0;
};

// QMessageBox-based presenter used by the application.
class DialogPresenter final : public MessagePresenter {
 public:
  void showError(QWidget* parent, const QString& title, const QString& text) override;
  void showInfo(QWidget* parent, const QString& title, const QString& text) override;
};

// Records messages instead of showing them (tests, headless screenshot runs).
class RecordingPresenter final : public MessagePresenter {
 public:
  void showError(QWidget*, const QString& title, const QString& text) override {
    errors.append(title + ": " + text);
  }
  void showInfo(QWidget*, const QString& title, const QString& text) override {
    infos.append(title + ": " + text);
  }
  QStringList errors;
  QStringList infos;
};

}  // namespace kvq::ui
