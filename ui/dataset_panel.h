// DatasetPanel — left side of the main window: the dump's summary (model, shape,
// conventions) above the DatasetModel tree. Emits the selected layer/kind/head.
#pragma once

#include <QWidget>

#include "dump_session.h"

class QLabel;
class QTreeView;

namespace kvq::ui {

class DatasetModel;

class DatasetPanel : public QWidget {
  Q_OBJECT

 public:
  explicit DatasetPanel(QWidget* parent = nullptr);

  void setSession(const SessionPtr& session);
  DatasetModel* model() const { return m_model; }
  QTreeView* view() const { return m_view; }
  // Selects layer/kind/head in the tree (head -1: the kind's row).
  void select(int layer, kvq::Kind kind, int head = -1);

 signals:
  // kind: int(kvq::Kind); head -1 = all heads.
  void selectionChanged(int layer, int kind, int head);

 private:
  void onCurrentChanged();

  QLabel* m_summary;
  QTreeView* m_view;
  DatasetModel* m_model;
};

}  // namespace kvq::ui
