#include "dataset_model.h"

#include <QStringList>

namespace kvq::ui {
namespace {

QStandardItem* numberItem(double value, int decimals) {
  auto* item = new QStandardItem(QString::number(value, 'f', decimals));
  item->setData(value, Qt::UserRole);
  item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  item->setEditable(false);
  return item;
}

QList<QStandardItem*> statsRow(const QString& name, const kvq::ValueStats& s,
                               const std::vector<int>* outliers) {
  auto* nameItem = new QStandardItem(name);
  nameItem->setEditable(false);
  QList<QStandardItem*> row{nameItem, numberItem(s.meanAbs, 4), numberItem(s.std, 4), numberItem(s.maxAbs, 3),
                            numberItem(s.excessKurtosis, 2)};
  QStringList channels;
  if (outliers != nullptr) {
    for (int c : *outliers) channels << QString::number(c);
  }
  auto* outlierItem = new QStandardItem(channels.join(", "));
  outlierItem->setEditable(false);
  outlierItem->setToolTip(QObject::tr("Channels by decreasing mean |x| (largest first)"));
  row << outlierItem;
  return row;
}

void tagRow(const QList<QStandardItem*>& row, int layer, int kind, int head) {
  row.front()->setData(layer, DatasetModel::LayerRole);
  row.front()->setData(kind, DatasetModel::KindRole);
  row.front()->setData(head, DatasetModel::HeadRole);
}

}  // namespace

DatasetModel::DatasetModel(QObject* parent) : QStandardItemModel(parent) {
  clearStats();
}

void DatasetModel::clearStats() {
  clear();
  setColumnCount(ColumnCount);
  setHorizontalHeaderLabels({tr("Layer / kind / head"), tr("mean |x|"), tr("std"), tr("max |x|"),
                             tr("kurtosis"), tr("outlier channels")});
  horizontalHeaderItem(KurtosisColumn)->setToolTip(tr("Excess kurtosis m4/m2² − 3 (0 for a Gaussian)"));
}

void DatasetModel::setStats(const std::vector<kvq::LayerStats>& stats) {
  std::vector<int> layers;
  for (const kvq::LayerStats& layer : stats) layers.push_back(layer.layer);
  setLayers(layers);
  for (const kvq::LayerStats& layer : stats) fillLayer(layer);
}

void DatasetModel::setLayers(const std::vector<int>& layers) {
  clearStats();
  for (int layer : layers) {
    auto* layerItem = new QStandardItem(tr("Layer %1").arg(layer));
    layerItem->setEditable(false);
    layerItem->setData(layer, LayerRole);
    layerItem->setData(-1, KindRole);
    layerItem->setData(-1, HeadRole);
    QList<QStandardItem*> layerRow{layerItem};
    for (int c = 1; c < ColumnCount; ++c) {
      auto* pending = new QStandardItem(c == MeanAbsColumn ? tr("…") : QString());
      pending->setEditable(false);
      pending->setToolTip(tr("Statistics are being computed"));
      layerRow << pending;
    }
    appendRow(layerRow);
  }
}

bool DatasetModel::fillLayer(const kvq::LayerStats& layer) {
  QStandardItem* layerItem = nullptr;
  for (int r = 0; r < rowCount() && layerItem == nullptr; ++r) {
    if (item(r)->data(LayerRole).toInt() == layer.layer) layerItem = item(r);
  }
  if (layerItem == nullptr) return false;
  layerItem->removeRows(0, layerItem->rowCount());
  for (int c = 1; c < ColumnCount; ++c) {
    QStandardItem* cell = item(layerItem->row(), c);
    cell->setText(QString());
    cell->setToolTip(QString());
  }
  for (const kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
    const kvq::KindStats& ks = kind == kvq::Kind::Keys ? layer.keys : layer.values;
    const QList<QStandardItem*> kindRow =
        statsRow(kind == kvq::Kind::Keys ? tr("keys") : tr("values"), ks.all, &ks.outlierChannels);
    tagRow(kindRow, layer.layer, static_cast<int>(kind), -1);
    for (size_t h = 0; h < ks.perHead.size(); ++h) {
      const QList<QStandardItem*> headRow = statsRow(tr("head %1").arg(h), ks.perHead[h], nullptr);
      tagRow(headRow, layer.layer, static_cast<int>(kind), static_cast<int>(h));
      kindRow.front()->appendRow(headRow);
    }
    layerItem->appendRow(kindRow);
  }
  return true;
}

int DatasetModel::filledLayers() const {
  int filled = 0;
  for (int r = 0; r < rowCount(); ++r) filled += item(r)->rowCount() > 0 ? 1 : 0;
  return filled;
}

QModelIndex DatasetModel::indexFor(int layer, kvq::Kind kind, int head) const {
  for (int r = 0; r < rowCount(); ++r) {
    QStandardItem* layerItem = item(r);
    if (layerItem->data(LayerRole).toInt() != layer) continue;
    for (int k = 0; k < layerItem->rowCount(); ++k) {
      QStandardItem* kindItem = layerItem->child(k);
      if (kindItem->data(KindRole).toInt() != static_cast<int>(kind)) continue;
      if (head < 0) return kindItem->index();
      if (head < kindItem->rowCount()) return kindItem->child(head)->index();
    }
  }
  return {};
}

}  // namespace kvq::ui
