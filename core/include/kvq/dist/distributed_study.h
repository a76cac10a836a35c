// runStudy over the ranks of a Communicator (docs/scaling.md): `mpirun -n N kvq
// train` and the in-process tests call this.
//
// Jobs (layer x kind, runStudy's order) are dealt to G = min(ranks, jobs) groups:
// job j to group j mod G, rank r to group r mod G. With no more ranks than jobs every
// rank is a group of its own and trains its jobs alone, reading only their layers.
// With more ranks than jobs, the ranks of a group train each of its jobs together:
// every rank reads the job's data and the searches are split over them
// (sharded_backend.h). Each job is runStudy on one layer and kind, which computes
// exactly what the whole study computes for that job; the codebooks and metrics on
// rank 0 are bit-identical to a one-process runStudy with the same options for any
// rank count (CPU backend; any thread count).
//
// Failures: a rank whose job fails stops, the others stop after their current job,
// and every rank then throws the error of the lowest failing rank (its kind, file,
// place and problem, the rank named): nothing is written by a failed run.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dist/communicator.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/backend.h"
#include "kvq/study/quantize_study.h"

namespace kvq {

// The jobs of a study in runStudy's order: (layer, kind), layer-major. Throws
// Error(BadInput, "--layers") for a layer not in the dump.
std::vector<std::pair<int, Kind>> studyJobs(const DumpInfo& info, const StudyOptions& options);

// Groups of ranks and their jobs.
struct JobPlan {
  int groups = 1;         // G = min(ranks, jobs), at least 1
  int group = 0;          // the group of `rank`: rank mod G
  std::vector<int> jobs;  // indices of the group's jobs: group, group + G, ...
  int rounds = 0;         // ceil(jobs / G): every rank takes part in this many rounds
};
JobPlan planJobs(int jobs, int ranks, int rank);

struct DistributedOptions {
  // Called on every rank before any training with the (layer, kind) jobs it will read
  // (for example to check their values); an error there fails the run before it starts.
  std::function<void(const std::vector<std::pair<int, Kind>>& jobs)> prepare;
};

// On rank 0: the whole StudyResult (backendName says how many ranks computed it); on
// the others: the result with no jobs. control reports this rank's share.
StudyResult runStudyDistributed(const DumpReader& reader, const StudyOptions& options, Backend& backend,
                                Communicator& world, const TaskControl* control = nullptr,
                                const DistributedOptions& distributed = {});

// Runs step on every rank; when it throws on any rank, every rank throws the error of
// the lowest rank whose error is its own (not PeerFailed), naming that rank.
void agreeOnFailure(Communicator& world, const std::function<void()>& step);

}  // namespace kvq
