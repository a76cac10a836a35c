// A Backend whose searches are shared by the ranks of a group (docs/scaling.md):
// the data-parallel half of a distributed study, used when there are more ranks
// than quantizers.
//
// nearest(), encodeGreedy() and encodeBeam() split the vectors into one contiguous
// block per rank (rank r: [n*r/size, n*(r+1)/size)), run the block on the inner
// backend and gather every block's codes (and distances, residuals) in rank order.
// Every per-vector result of a backend depends on that vector only, so each rank
// then holds exactly what one process computes. Everything else (accumulate(), the
// host EMA and k-means steps built on nearest()) runs whole on every rank, in the
// single process's order: the trained codebooks are bit-identical to a one-process
// run for any number of ranks. An encode that also sums depthError runs whole on
// every rank (its sum's order is part of the result).
//
// Failure protocol: before each gather the ranks agree that none has failed
// (Communicator::allReduceMax). A rank that fails elsewhere calls reportFailure()
// once instead of its next collective; the others then throw PeerFailed from their
// next one, and all leave in step, never waiting on a rank that is gone.
#pragma once

#include <memory>

#include "kvq/base/error.h"
#include "kvq/dist/communicator.h"
#include "kvq/rvq/backend.h"

namespace kvq {

// Thrown on the ranks that did not fail when another rank of the group did.
class PeerFailed : public Error {
 public:
  PeerFailed() : Error(ErrorKind::Internal, "", "", "another rank of the group failed") {}
};

// inner and group must outlive the result.
std::unique_ptr<Backend> makeShardedBackend(Backend& inner, Communicator& group);

// The collective a failing rank calls instead of its next one (see above).
void reportFailure(Communicator& group);

// The collective every rank calls at agreed points (e.g. a job's end): throws
// PeerFailed when another rank reported a failure.
void checkPeers(Communicator& group);

}  // namespace kvq
