// kvq validate --json-stream FILE: the isolated validator (hidden). The studio and
// the other commands start it as a child process with resource limits; it reports
// on stdout in the protocol of core/src/isolate/protocol.h. Not meant for people:
// `kvq info` is the command that validates a dump for them.
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "kvq/base/error.h"
#include "kvq/isolate/validator.h"

namespace kvq::cli {

void registerValidate(CLI::App& root) {
  struct ValidateArgs {
    ValidatorRequest request;
    bool jsonStream = false;
    std::string kind = "dump", worker = "0/1";
    bool noStats = false;
  };
  auto args = std::make_shared<ValidateArgs>();
  CLI::App* cmd = root.add_subcommand("validate", "Validate an untrusted file in isolation (internal)");
  cmd->group("");  // hidden from --help
  cmd->add_option("file", args->request.path, "File to validate")->required();
  cmd->add_flag("--json-stream", args->jsonStream, "Report as JSON lines on stdout (required)")->required();
  cmd->add_option("--kind", args->kind, "dump or codebooks")->check(CLI::IsMember({"dump", "codebooks"}));
  cmd->add_option("--worker", args->worker, "K/N: scan every N-th layer starting at the K-th");
  cmd->add_option("--layers", args->request.layers, "Scan only these layers (comma-separated)")
      ->delimiter(',');
  cmd->add_flag("--no-stats", args->noStats, "Structure only (the statistics are cached)");
  cmd->add_option("--address-space", args->request.addressSpaceBytes,
                  "Bytes of address space this process may add after it started (0: no limit)");
  cmd->callback([args]() {
    ValidatorRequest& r = args->request;
    r.kind = args->kind == "codebooks" ? UntrustedKind::Codebooks : UntrustedKind::Dump;
    r.statistics = !args->noStats;
    if (std::sscanf(args->worker.c_str(), "%d/%d", &r.worker, &r.workers) != 2) {
      throwBadInput("", "--worker", "expected K/N");
    }
    std::fflush(stdout);
    const int code = runValidator(r, STDOUT_FILENO);
    // _exit: HDF5's exit handlers must not run on library state a hostile file may
    // have damaged; everything the parent needs has been written.
    ::_exit(code);
  });
}

}  // namespace kvq::cli
