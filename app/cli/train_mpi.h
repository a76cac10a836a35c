// `mpirun -n N kvq train ...` (docs/scaling.md): the train command on every rank of
// an MPI job. Each rank opens the dump read-only and reads only the layers of its
// jobs (their values checked there, not the whole file's); rank 0 prints the table
// and writes the codebook file, the npz and the reports, atomically as always, once
// every rank has succeeded. A failure on any rank fails every rank with that rank's
// message, printed once by rank 0, and the usual exit code (2 bad input, 1 internal).
#pragma once

#include <string>

#include "engine_options.h"

namespace kvq::cli {

// True when kvq was built with MPI and this process was started by an MPI launcher.
bool trainUnderMpi();

// The train command's work on every rank (MPI starts and ends here). Throws kvq::Error
// on rank 0, SilentExit on the other ranks.
void runTrainDistributed(EngineOptions& o, const std::string& out, const std::string& npz);

}  // namespace kvq::cli
