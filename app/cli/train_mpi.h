// `mpirun -n N kvq train ...` (docs/scaling.md): the train command on every rank of
// an MPI job. Rank 0 first validates the dump's structure in the isolated validator
// (kvq/isolate/open_file.h), before any rank parses it; a refusal ends every rank.
// Each rank then checks that it sees the very file rank 0 validated (device, inode,
// size, mtime), opens it read-only and has the values of only the layers it reads
// checked in a validator child of its own. Rank 0 prints the tables and writes the
// codebook file, the npz and the reports, atomically as always, once every rank has
// succeeded. A failure on any rank fails every rank with that rank's message,
// printed once by rank 0, and the usual exit code (2 bad input, 1 internal).
// --no-isolation parses and checks in the ranks' own processes (trusted files).
#pragma once

#include <string>
#include <vector>

#include "attention_options.h"
#include "engine_options.h"
#include "open_options.h"

namespace CLI {
class App;
}

namespace kvq::cli {

// The options of `kvq train`.
struct TrainArgs {
  EngineOptions engine;
  OpenArgs open;
  AttentionCliOptions attention;
  std::string out, npz;
  std::vector<std::string> also;  // --also: further training dumps
};

// True when kvq was built with MPI and this process was started by an MPI launcher.
bool trainUnderMpi();

// The train command's work on every rank (MPI starts and ends here). A failure: rank 0
// prints the run's one message (its flags named as cmd names them), then every rank
// throws SilentExit with the exit code.
void runTrainDistributed(TrainArgs& args, const CLI::App* cmd);

}  // namespace kvq::cli
