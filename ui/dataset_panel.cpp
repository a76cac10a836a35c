#include "dataset_panel.h"

#include <QHeaderView>
#include <QLabel>
#include <QTreeView>
#include <QVBoxLayout>

#include "dataset_model.h"

namespace kvq::ui {
namespace {

QString summaryHtml(const kvq::DumpInfo& info) {
  QString rope = QString::fromStdString(info.keyRope);
  if (info.ropeTheta) rope += QObject::tr(" (θ %1)").arg(*info.ropeTheta);
  const auto row = [](const QString& k, const QString& v) {
    return QStringLiteral("<tr><td><b>%1</b>&nbsp;&nbsp;</td><td>%2</td></tr>").arg(k, v.toHtmlEscaped());
  };
  QString html = QStringLiteral("<table>");
  html += row(QObject::tr("Model"), QString::fromStdString(info.model));
  html += row(QObject::tr("Layers"), QObject::tr("%1 of %2").arg(info.layers.size()).arg(info.numLayers));
  html += row(QObject::tr("KV heads"),
              QString::number(info.numKvHeads) +
                  (info.numQHeads > 0 ? QObject::tr("  (query heads %1)").arg(info.numQHeads) : QString()));
  html += row(QObject::tr("head_dim"), QString::number(info.headDim));
  html +=
      row(QObject::tr("Tokens"), QLocale().toString(static_cast<qlonglong>(info.tokens)) +
                                     (info.sequenceStarts.empty()
                                          ? QString()
                                          : QObject::tr(" in %1 sequences").arg(info.sequenceStarts.size())));
  html += row(QObject::tr("dtype"), QString::fromLatin1(kvq::dtypeName(info.dtype)));
  html += row(QObject::tr("Key RoPE"), rope);
  html += QStringLiteral("</table>");
  return html;
}

}  // namespace

DatasetPanel::DatasetPanel(QWidget* parent)
    : QWidget(parent),
      m_summary(new QLabel(this)),
      m_view(new QTreeView(this)),
      m_model(new DatasetModel(this)) {
  m_summary->setTextFormat(Qt::RichText);
  m_summary->setWordWrap(true);
  m_summary->setText(tr("<i>No dump open.</i> Use File › Open or drop an .h5 file here."));
  m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
  m_view->setModel(m_model);
  m_view->setAlternatingRowColors(true);
  m_view->setUniformRowHeights(true);
  m_view->setSelectionBehavior(QAbstractItemView::SelectRows);
  m_view->header()->setStretchLastSection(true);
  m_view->setToolTip(tr("Statistics over every token: select a layer, kind or head to show its channels"));
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addWidget(m_summary);
  layout->addWidget(m_view, 1);
  connect(m_view->selectionModel(), &QItemSelectionModel::currentChanged, this,
          &DatasetPanel::onCurrentChanged);
}

void DatasetPanel::setSession(const SessionPtr& session) {
  m_session = session;
  m_pending.reset();
  if (!session) {
    m_model->clearStats();
    m_summary->setText(tr("<i>No dump open.</i>"));
    return;
  }
  m_model->setStats(session->stats);
  m_summary->setText(summaryHtml(session->info()));
  m_view->expandToDepth(0);
  for (int c = 0; c < DatasetModel::ColumnCount - 1; ++c) m_view->resizeColumnToContents(c);
}

void DatasetPanel::showPending(const kvq::DumpInfo& info) {
  m_pending = info;
  m_model->setLayers(info.layers);
  updatePendingSummary();
  m_view->resizeColumnToContents(DatasetModel::NameColumn);
}

void DatasetPanel::fillPending(const kvq::LayerStats& stats) {
  if (!m_pending || !m_model->fillLayer(stats)) return;
  updatePendingSummary();
}

void DatasetPanel::restore() {
  if (m_pending) setSession(m_session);
}

void DatasetPanel::updatePendingSummary() {
  const int done = m_model->filledLayers();
  const auto total = static_cast<int>(m_pending->layers.size());
  m_summary->setText(summaryHtml(*m_pending) +
                     (done < total
                          ? tr("<p><i>Computing statistics: %1 of %2 layers…</i></p>").arg(done).arg(total)
                          : tr("<p><i>Statistics complete; opening…</i></p>")));
}

void DatasetPanel::select(int layer, kvq::Kind kind, int head) {
  const QModelIndex index = m_model->indexFor(layer, kind, head);
  if (index.isValid()) m_view->setCurrentIndex(index);
}

void DatasetPanel::onCurrentChanged() {
  if (m_pending) return;  // the window still holds the previous session
  const QModelIndex index = m_view->currentIndex().siblingAtColumn(DatasetModel::NameColumn);
  if (!index.isValid()) return;
  const int kind = index.data(DatasetModel::KindRole).toInt();
  emit selectionChanged(index.data(DatasetModel::LayerRole).toInt(), kind < 0 ? 0 : kind,
                        index.data(DatasetModel::HeadRole).toInt());
}

}  // namespace kvq::ui
