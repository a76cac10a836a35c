// RecentFiles — the File › Open Recent menu, persisted in QSettings ("recentFiles").
#pragma once

#include <QObject>
#include <QStringList>

class QMenu;

namespace kvq::ui {

class RecentFiles : public QObject {
  Q_OBJECT

 public:
  static constexpr int kMaxEntries = 10;

  RecentFiles(QMenu* menu, QObject* parent = nullptr);

  void add(const QString& path);  // moves path to the top
  void remove(const QString& path);
  QStringList files() const { return m_files; }

 signals:
  void openRequested(const QString& path);

 private:
  void rebuildMenu();
  void save() const;

  QMenu* m_menu;
  QStringList m_files;
};

}  // namespace kvq::ui
