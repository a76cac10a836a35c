// File exports of a study: metrics table (CSV or JSON by suffix) and codebooks
// (HDF5 codebook file or npz by suffix). Writes are atomic; failures throw
// kvq::Error naming the file, and leave an existing file untouched.
#pragma once

#include <QString>

#include "kvq/study/quantize_study.h"

namespace kvq::ui {

void writeMetricsFile(const kvq::StudyResult& study, const QString& path);    // .csv | .json
void writeCodebooksFile(const kvq::StudyResult& study, const QString& path);  // .h5 | .hdf5 | .npz

// Writes bytes to path through QSaveFile (temporary + rename). Throws kvq::Error.
void writeFileAtomically(const QString& path, const QByteArray& bytes);

}  // namespace kvq::ui
