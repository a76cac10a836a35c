#include "recent_files.h"

#include <QDir>
#include <QFileInfo>
#include <QMenu>
#include <QSettings>

namespace kvq::ui {
namespace {
const char* const kKey = "recentFiles";
}

RecentFiles::RecentFiles(QMenu* menu, QObject* parent) : QObject(parent), m_menu(menu) {
  m_files = QSettings().value(kKey).toStringList();
  while (m_files.size() > kMaxEntries) m_files.removeLast();
  rebuildMenu();
}

void RecentFiles::add(const QString& path) {
  const QString absolute = QFileInfo(path).absoluteFilePath();
  m_files.removeAll(absolute);
  m_files.prepend(absolute);
  while (m_files.size() > kMaxEntries) m_files.removeLast();
  save();
  rebuildMenu();
}

void RecentFiles::remove(const QString& path) {
  m_files.removeAll(QFileInfo(path).absoluteFilePath());
  save();
  rebuildMenu();
}

void RecentFiles::save() const {
  QSettings().setValue(kKey, m_files);
}

void RecentFiles::rebuildMenu() {
  m_menu->clear();
  int n = 1;
  for (const QString& path : std::as_const(m_files)) {
    const QString text = QStringLiteral("&%1  %2").arg(n % 10).arg(QDir::toNativeSeparators(path));
    QAction* action = m_menu->addAction(text);
    action->setToolTip(path);
    connect(action, &QAction::triggered, this, [this, path] { emit openRequested(path); });
    ++n;
  }
  if (m_files.isEmpty()) {
    m_menu->addAction(tr("(none)"))->setEnabled(false);
    return;
  }
  m_menu->addSeparator();
  connect(m_menu->addAction(tr("Clear list")), &QAction::triggered, this, [this] {
    m_files.clear();
    save();
    rebuildMenu();
  });
}

}  // namespace kvq::ui
