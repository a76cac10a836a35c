#include "open_options.h"

#include <CLI/CLI.hpp>

#include <filesystem>

namespace kvq::cli {

void addOpenOptions(CLI::App* cmd, OpenArgs& args, bool withCache) {
  cmd->add_flag("--no-isolation", args.noIsolation,
                "Parse files in this process instead of a limited child process (trusted files only: a "
                "damaged or hostile file can then crash or hang kvq)");
  if (withCache) {
    cmd->add_flag("--no-cache", args.noCache, "Neither read nor write the per-user statistics cache");
  }
}

OpenPolicy openPolicy(const OpenArgs& args) {
  OpenPolicy policy = OpenPolicy::fromEnvironment();
  policy.isolate = !args.noIsolation;
  policy.useCache = !args.noCache;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) policy.validator = self.string();  // kvq validates with itself: same version, same build
  return policy;
}

std::unique_ptr<DumpReader> openDumpForWork(const std::string& path, const OpenArgs& args,
                                            const TaskControl* control) {
  return openDump(path, openPolicy(args), {}, control).reader;
}

CodebookFile openCodebooks(const std::string& path, const OpenArgs& args) {
  return openCodebookFile(path, openPolicy(args));
}

}  // namespace kvq::cli
