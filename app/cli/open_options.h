// How the commands open files: --no-isolation and --no-cache, and the shared
// helpers that open a dump or a codebook file through kvq/isolate/open_file.h.
#pragma once

#include <memory>
#include <string>

#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/isolate/open_file.h"

namespace CLI {
class App;
}

namespace kvq::cli {

struct OpenArgs {
  bool noIsolation = false;
  bool noCache = false;
};

// --no-isolation (every command that reads a file); --no-cache when withCache.
void addOpenOptions(CLI::App* cmd, OpenArgs& args, bool withCache);

// The environment's policy (OpenPolicy::fromEnvironment) with the flags applied;
// the validator is this very binary.
OpenPolicy openPolicy(const OpenArgs& args);

// A dump opened for training or evaluation (statistics go to the cache, unshown).
std::unique_ptr<DumpReader> openDumpForWork(const std::string& path, const OpenArgs& args,
                                            const TaskControl* control);
CodebookFile openCodebooks(const std::string& path, const OpenArgs& args);

}  // namespace kvq::cli
