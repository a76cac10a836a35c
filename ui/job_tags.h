// The tags of the GUI's jobs (JobQueue keys requests by tag: a new request replaces
// a queued one of its tag and cancels the running one). Every tag the GUI submits is
// named here, so a feature that adds a job adds its tag in this one place.
#pragma once

#include <QString>

namespace kvq::ui::job_tag {

inline const QString kOpen = QStringLiteral("open");          // open a dump + statistics
inline const QString kTrain = QStringLiteral("train");        // train and evaluate a study
inline const QString kPreview = QStringLiteral("preview");    // the quick first pass of an auto-training
inline const QString kChannels = QStringLiteral("channels");  // one head's channel magnitudes
inline const QString kBackend = QStringLiteral("backend");    // start a compute backend
inline const QString kModel = QStringLiteral("model");        // perplexity/KL with a quantized cache
// BackgroundTrainer's jobs (on its own low-priority queue, or on the GUI's queue
// when HDF5 reads cannot run on a second thread).
inline const QString kBackgroundSize = QStringLiteral("background size");  // one neighbouring size
inline const QString kCalibrate = QStringLiteral("calibrate");             // measure a backend's throughput
inline const QString kEvaluate = QStringLiteral("evaluate");  // codebooks from a file on the open dump

// Each export has a tag of its own (a counter and the target path): one export must
// never replace or cancel another.
inline QString exportTag(quint64 count, const QString& absolutePath) {
  return QStringLiteral("export:%1:%2").arg(count).arg(absolutePath);
}
inline bool isExport(const QString& tag) {
  return tag.startsWith(QLatin1String("export:"));
}

}  // namespace kvq::ui::job_tag
