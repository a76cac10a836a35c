// Output files of the engine commands: checked before any long work (a missing or
// read-only directory fails at once, naming the option) and the reports written after.
#pragma once

#include <string>

#include "engine_options.h"

namespace kvq::cli {

// Throws BadInput(path, option, ...) (exit 2) when `path`'s directory is missing or
// not writable, or `path` is a directory. "" (option not given) passes.
void checkOutputPath(const std::string& option, const std::string& path);
// checkOutputPath for --report and --csv.
void checkReportOutputs(const EngineOptions& o);
// Writes --report (JSON) / --csv when given; prints what was written.
void writeStudyReports(const EngineOptions& o, const StudyResult& study);

}  // namespace kvq::cli
