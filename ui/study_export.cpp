#include "study_export.h"

#include <QFileInfo>
#include <QSaveFile>

#include <nlohmann/json.hpp>

#include "kvq/base/error.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_npz.h"
#include "kvq/study/report.h"

namespace kvq::ui {

void writeFileAtomically(const QString& path, const QByteArray& bytes) {
  QSaveFile file(path);
  if (!file.open(QIODevice::WriteOnly)) {
    kvq::throwBadInput(path.toStdString(), "", "cannot write: " + file.errorString().toStdString());
  }
  if (file.write(bytes) != bytes.size() || !file.commit()) {
    kvq::throwBadInput(path.toStdString(), "", "write failed: " + file.errorString().toStdString());
  }
}

void writeMetricsFile(const kvq::StudyResult& study, const QString& path) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  if (suffix == QLatin1String("csv")) {
    writeFileAtomically(path, QByteArray::fromStdString(kvq::studyToCsv(study)));
  } else if (suffix == QLatin1String("json")) {
    writeFileAtomically(path, QByteArray::fromStdString(kvq::studyToJson(study).dump(2) + "\n"));
  } else {
    kvq::throwBadInput(path.toStdString(), "",
                       "unknown table type '" + suffix.toStdString() + "' (expected .csv or .json)");
  }
}

void writeCodebooksFile(const kvq::StudyResult& study, const QString& path) {
  const QString suffix = QFileInfo(path).suffix().toLower();
  const kvq::CodebookFile file = kvq::codebookFileFromStudy(study);
  if (suffix == QLatin1String("h5") || suffix == QLatin1String("hdf5")) {
    kvq::writeCodebookFile(path.toStdString(), file);
  } else if (suffix == QLatin1String("npz")) {
    kvq::writeCodebookNpz(path.toStdString(), file);
  } else {
    kvq::throwBadInput(path.toStdString(), "",
                       "unknown codebook file type '" + suffix.toStdString() + "' (expected .h5 or .npz)");
  }
}

}  // namespace kvq::ui
