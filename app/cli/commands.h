// Registration of the kvq subcommands. Each command lives in its own cmd_*.cpp,
// adds itself to the root CLI11 app and does its work in the callback; errors
// are thrown as kvq::Error and turned into exit codes by main().
#pragma once

#include <string>

#include "kvq/base/error.h"

namespace CLI {
class App;
}

namespace kvq::cli {

// Ends kvq with this exit code and no message (the ranks of an MPI run other than
// rank 0, which prints the run's error once).
struct SilentExit {
  int code = 1;
};

// The exit code of a run that failed with e: 2 bad input, 130 cancelled, 1 otherwise.
inline int exitCodeOf(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::BadInput:
      return 2;
    case ErrorKind::Cancelled:
      return 130;
    default:
      return 1;
  }
}

void registerInfo(CLI::App& root);
void registerSynth(CLI::App& root);
void registerDevices(CLI::App& root);
void registerTrain(CLI::App& root);
void registerEval(CLI::App& root);
void registerSweep(CLI::App& root);
void registerEncode(CLI::App& root);
void registerPpl(CLI::App& root);
void registerAllocate(CLI::App& root);
void registerValidate(CLI::App& root);
void registerAttention(CLI::App& root);

}  // namespace kvq::cli
