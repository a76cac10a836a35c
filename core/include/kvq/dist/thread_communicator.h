// In-process ranks: communicators whose ranks are threads of one process, for tests
// of what runs over MPI (the same collectives, the same rank order) without mpirun,
// also under sanitizers.
#pragma once

#include <memory>
#include <vector>

#include "kvq/dist/communicator.h"

namespace kvq {

// `ranks` connected communicators; communicator i must be used by one thread only,
// which acts as rank i. Like MPI, a rank that stops calling the collectives leaves
// the others waiting.
std::vector<std::unique_ptr<Communicator>> makeThreadCommunicators(int ranks);

}  // namespace kvq
