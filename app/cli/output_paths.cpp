#include "output_paths.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/study/report.h"

namespace kvq::cli {

void writeStudyReports(const EngineOptions& o, const StudyResult& study) {
  if (!o.reportJson.empty()) {
    atomicWriteFile(o.reportJson, studyToJson(study).dump(2) + "\n");
    std::printf("wrote %s\n", o.reportJson.c_str());
  }
  if (!o.reportCsv.empty()) {
    atomicWriteFile(o.reportCsv, studyToCsv(study));
    std::printf("wrote %s\n", o.reportCsv.c_str());
  }
}

void checkOutputPath(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throwBadInput(path, option, "is a directory, expected a file name");
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  if (!fs::is_directory(dir, ec)) throwBadInput(path, option, "directory '" + dir + "' does not exist");
  // The temporary file is created next to the target, so the directory must be writable.
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throwBadInput(path, option, "directory '" + dir + "' is not writable");
  }
}

void checkReportOutputs(const EngineOptions& o) {
  checkOutputPath("--report", o.reportJson);
  checkOutputPath("--csv", o.reportCsv);
}

}  // namespace kvq::cli
