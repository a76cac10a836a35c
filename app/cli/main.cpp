// kvq — command-line front end of KVQ Studio.
// Exit codes: 0 success, 2 bad input or usage, 1 internal error, 130 cancelled.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string_view>

#include "commands.h"
#include "config_flags.h"
#include "kvq/base/error.h"
#include "kvq/base/openmp_process.h"
#include "process_setup.h"

namespace {

// The subcommand: the first argument that is not an option (nullptr when none).
const char* subcommandOf(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] != '-') return argv[i];
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  // The model pass's OpenMP threads sleep, not spin, while they wait (measured for kvq ppl only).
  const char* command = subcommandOf(argc, argv);
  if (command != nullptr && std::string_view(command) == "ppl") kvq::preferPassiveOpenMpWait(argv);
  kvq::app::prepareProcess();  // first: HDF5 and the GPU engines
  CLI::App app{"kvq — KV-cache residual vector quantization studio, command-line tool"};
  app.set_version_flag("--version", std::string("kvq ") + KVQ_VERSION);
  app.require_subcommand(1);
  app.fallthrough(false);
  kvq::cli::registerInfo(app);
  kvq::cli::registerSynth(app);
  kvq::cli::registerDevices(app);
  kvq::cli::registerTrain(app);
  kvq::cli::registerEval(app);
  kvq::cli::registerSweep(app);
  kvq::cli::registerEncode(app);
  kvq::cli::registerPpl(app);
  kvq::cli::registerAllocate(app);
  kvq::cli::registerValidate(app);
  kvq::cli::registerAttention(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const kvq::cli::SilentExit& e) {
    return e.code;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const kvq::Error& e) {
    // Core names settings by field ("group_size"); the user typed --group-size.
    const auto parsed = app.get_subcommands();
    std::cerr << "kvq: error: " << kvq::cli::presentError(e, parsed.empty() ? nullptr : parsed.front())
              << "\n";
    return kvq::cli::exitCodeOf(e);
  } catch (const std::bad_alloc&) {
    std::cerr << "kvq: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kvq: internal error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
