#include <filesystem>

#include "commands.h"

namespace kvq::cli {

// The source tree's sample (a build run in place) or, for an installed kvq, the copy
// under <prefix>/share/kvq-studio/samples next to <prefix>/bin.
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

}  // namespace kvq::cli
