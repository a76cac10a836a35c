// MPI for `kvq train` (docs/scaling.md): whether this process was started by an MPI
// launcher, and MPI itself for the life of a Session, with the world communicator
// as a kvq::Communicator. Plain C++: mpi.h stays inside kvq_mpi.
#pragma once

#include <memory>

#include "kvq/dist/communicator.h"

namespace kvq::mpi {

// True when the environment names an MPI rank: mpirun/mpiexec of Open MPI
// (OMPI_COMM_WORLD_SIZE), MPICH and Intel MPI (PMI_RANK), any PMIx launcher such as
// `srun --mpi=pmix` (PMIX_RANK), MVAPICH (MV2_COMM_WORLD_SIZE). A plain `kvq train`
// never starts MPI.
bool launchedByMpi();

class Session {
 public:
  // MPI_Init_thread (funneled: only the main thread calls MPI; OpenMP threads do not).
  Session();
  // MPI_Finalize.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // This process's rank among the ranks on its node (MPI_Comm_split_type shared
  // memory): 0 .. ranks on the node - 1, whatever the launcher. Collective: every rank
  // calls it.
  int nodeLocalRank() const;

  // MPI_COMM_WORLD. Blocks above 2^31 - 1 bytes in one allGather are refused
  // (Error(Internal)); gatherToRoot and broadcastFromRoot take any size.
  std::unique_ptr<Communicator> world();
};

}  // namespace kvq::mpi
