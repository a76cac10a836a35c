// DatasetModel — the dataset panel's tree: layer › keys/values › head, with the
// statistics of computeDumpStats (mean|x|, std, max|x|, excess kurtosis, outlier
// channels). Display text is formatted; Qt::UserRole holds the exact double.
#pragma once

#include <QStandardItemModel>

#include <vector>

#include "kvq/dump/dump_stats.h"

namespace kvq::ui {

class DatasetModel : public QStandardItemModel {
  Q_OBJECT

 public:
  enum Column {
    NameColumn,
    MeanAbsColumn,
    StdColumn,
    MaxAbsColumn,
    KurtosisColumn,
    OutliersColumn,
    ColumnCount
  };
  // Roles on the name column identifying what a row describes.
  enum Role {
    LayerRole = Qt::UserRole + 1,
    KindRole,
    HeadRole
  };  // KindRole: int(kvq::Kind); HeadRole: -1 = all

  explicit DatasetModel(QObject* parent = nullptr);

  void setStats(const std::vector<kvq::LayerStats>& stats);
  void clearStats();
  // One row per layer with empty statistics ("…"), filled in later by fillLayer:
  // the dataset panel paints a dump's layers before its statistics arrive.
  void setLayers(const std::vector<int>& layers);
  // Fills the row of stats.layer (keys, values and their heads); false when the
  // model has no such row.
  bool fillLayer(const kvq::LayerStats& stats);
  // Layers whose statistics are shown.
  int filledLayers() const;

  // Row index of layer/kind/head (head -1: the kind's row). Invalid if absent.
  QModelIndex indexFor(int layer, kvq::Kind kind, int head = -1) const;
};

}  // namespace kvq::ui
