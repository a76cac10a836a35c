// Readable tables on stdout: a study (kvq train, kvq eval) and a sweep.
#pragma once

#include "kvq/study/quantize_study.h"
#include "kvq/study/sweep.h"

namespace kvq::cli {

// Dump, split, config and backend lines, then one row per layer x kind (bits, ratio,
// error, SNR, cosine, entries used, error by depth) with its KIVI baselines below.
void printStudyTable(const StudyResult& study);
// One row per method x kind x (C, K) or bits, summed over the layers.
void printSweepTable(const SweepResult& sweep);

}  // namespace kvq::cli
