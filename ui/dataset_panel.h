// DatasetPanel — left side of the main window: the dump's summary (model, shape,
// conventions) above the DatasetModel tree. Emits the selected layer/kind/head.
//
// While a dump opens it shows that dump *pending*: its header as soon as it is
// validated, its layers' statistics as they arrive, a line saying how many are
// done. Selection signals stay quiet meanwhile (the window still holds the previous
// session); a failed open restores the previous session's view.
#pragma once

#include <QWidget>

#include <optional>

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
  // Shows a dump being opened: its header now, statistics as fillPending delivers them.
  void showPending(const kvq::DumpInfo& info);
  void fillPending(const kvq::LayerStats& stats);
  // Back to the last session given to setSession (after a failed or cancelled open).
  void restore();
  bool isPending() const { return m_pending.has_value(); }
  DatasetModel* model() const { return m_model; }
  QTreeView* view() const { return m_view; }
  // Selects layer/kind/head in the tree (head -1: the kind's row).
  void select(int layer, kvq::Kind kind, int head = -1);

 signals:
  // kind: int(kvq::Kind); head -1 = all heads.
  void selectionChanged(int layer, int kind, int head);

 private:
  void onCurrentChanged();
  void updatePendingSummary();

  QLabel* m_summary;
  QTreeView* m_view;
  DatasetModel* m_model;
  SessionPtr m_session;                    // the session shown when nothing is pending
  std::optional<kvq::DumpInfo> m_pending;  // the dump being opened
};

}  // namespace kvq::ui
