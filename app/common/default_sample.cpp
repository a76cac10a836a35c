#include "default_sample.h"

#include <filesystem>

namespace kvq::app {

std::string defaultSample() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path inTree(KVQ_DEFAULT_SAMPLE);
  if (fs::exists(inTree, ec)) return inTree.string();
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed =
        exe.parent_path().parent_path() / "share" / "kvq-studio" / "samples" / inTree.filename();
    if (fs::exists(installed, ec)) return installed.string();
  }
  return {};
}

}  // namespace kvq::app
