// Communicator — the few collective operations a study spread over processes needs
// (docs/scaling.md), with no MPI type in sight: core stays buildable and testable
// without MPI. The MPI implementation is mpi_session.h (kvq_mpi, linked by `kvq` only);
// an in-process one (thread_communicator.h) runs ranks as threads in tests.
//
// Every operation is collective over the communicator's ranks: all ranks call it,
// in the same order, with arguments that agree (sizes, root). Blocks are always
// combined in rank order, so what a rank receives never depends on timing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kvq {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;

  // Gathers every rank's block on every rank, in rank order.
  //   mine: bytes[rank()] bytes, which may be the rank's own block inside `all`;
  //   all: sum(bytes) bytes out; bytes: [size()], the same on every rank.
  virtual void allGather(const void* mine, void* all, const std::vector<int64_t>& bytes) = 0;

  // The largest of every rank's value, on every rank.
  virtual int64_t allReduceMax(int64_t value) = 0;

  // Rank 0 receives every rank's bytes in rank order (its own first); the others an
  // empty list. Any size, also beyond 2 GiB.
  virtual std::vector<std::string> gatherToRoot(const std::string& mine) = 0;

  // Rank 0's data, on every rank (the others' argument is ignored).
  virtual std::string broadcastFromRoot(const std::string& data) = 0;

  // A communicator of the ranks that pass the same color, ordered by key (ties by
  // rank): MPI_Comm_split.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
};

// The one-rank communicator: every operation returns its own input.
std::unique_ptr<Communicator> makeSoloCommunicator();

}  // namespace kvq
