// Reports of a study or a sweep: JSON (every number, nested by layer/kind/head/
// depth) and CSV (one row per measurement, for spreadsheets and plotting).
// Definitions of every number: docs/metrics.md. Files are written atomically
// (kvq/base/file_util.h).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kvq/study/quantize_study.h"
#include "kvq/study/sweep.h"

namespace kvq {

// {"kvq_report": "study", "version": 1, "dump": {...}, "config": {...}, "split": {...},
//  "backend", "timings", "totals": {...}, "jobs": [ {layer, kind, grouping, bits..., error,
//  by_depth: [K], per_head: [H][K], usage: [quantizer][K], baselines: [...] } ] }
nlohmann::json studyToJson(const StudyResult& study, bool includeHistograms = true);

// Columns: layer,kind,head,method,codebook_size,depth,bits,group_size,bits_per_channel,
// compression_ratio,relative_error,snr_db,mean_cosine,vectors. head "all" for every
// head together; method "rvq" (one row per depth 1..K) or "kivi" (one row per b);
// layer "all" rows sum every layer of a kind. With attention results, the
// columns of attentionCsvColumns() follow (attention_report.h).
std::string studyToCsv(const StudyResult& study);

// The header line of studyToCsv and sweepToCsv (with its newline).
std::string studyCsvHeader();

nlohmann::json sweepToJson(const SweepResult& sweep);
// Same columns as studyToCsv (head "all"): the rate-distortion table.
std::string sweepToCsv(const SweepResult& sweep);

// JSON of the raw sums and derived numbers of one set of vectors.
nlohmann::json errorToJson(const ErrorSums& error);

}  // namespace kvq
