#include "kvq/dist/distributed_study.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include "kvq/base/error.h"
#include "kvq/dist/result_codec.h"
#include "kvq/dist/sharded_backend.h"
#include "study/sub_task.h"

namespace kvq {
namespace {

// --- errors as bytes: [peer flag][kind][rank] then file, where, problem ---

void appendString(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
  out.append(s);
}

std::string readString(const std::string& in, size_t& pos) {
  uint64_t n = 0;
  if (in.size() - pos < sizeof(n)) throwInternal("error message", "truncated");
  std::memcpy(&n, in.data() + pos, sizeof(n));
  pos += sizeof(n);
  if (in.size() - pos < n) throwInternal("error message", "truncated");
  std::string s = in.substr(pos, static_cast<size_t>(n));
  pos += static_cast<size_t>(n);
  return s;
}

std::string encodeError(const Error& e, bool peer, int rank) {
  std::string out;
  out.push_back(peer ? 1 : 0);
  out.push_back(static_cast<char>(e.kind()));
  const int32_t r = rank;
  out.append(reinterpret_cast<const char*>(&r), sizeof(r));
  appendString(out, e.file());
  appendString(out, e.where());
  appendString(out, e.problem());
  return out;
}

[[noreturn]] void throwDecoded(const std::string& bytes, int ranks) {
  if (bytes.size() < 2 + sizeof(int32_t)) throwInternal("error message", "truncated");
  const auto kind = static_cast<ErrorKind>(bytes[1]);
  int32_t rank = 0;
  std::memcpy(&rank, bytes.data() + 2, sizeof(rank));
  size_t pos = 2 + sizeof(rank);
  std::string file = readString(bytes, pos);
  std::string where = readString(bytes, pos);
  std::string problem = readString(bytes, pos);
  problem += " (rank " + std::to_string(rank) + " of " + std::to_string(ranks) + ")";
  throw Error(kind, std::move(file), std::move(where), std::move(problem));
}

// This rank's failure while running step, as bytes ("" when step succeeded).
std::string failureOf(const std::function<void()>& step, int rank) {
  try {
    step();
    return {};
  } catch (const PeerFailed& e) {
    return encodeError(e, true, rank);
  } catch (const Error& e) {
    return encodeError(e, false, rank);
  } catch (const std::bad_alloc&) {
    return encodeError(Error(ErrorKind::Resource, "", "", "out of memory"), false, rank);
  } catch (const std::exception& e) {
    return encodeError(Error(ErrorKind::Internal, "", "", e.what()), false, rank);
  }
}

// --- the jobs ---

// A fingerprint of what a rank opened: every rank must see the same dump.
std::string dumpFingerprint(const DumpInfo& info) {
  std::string s = std::to_string(info.tokens) + "/" + std::to_string(info.numKvHeads) + "/" +
                  std::to_string(info.headDim) + "/" + std::to_string(static_cast<int>(info.dtype)) + "/";
  for (int layer : info.layers) s += std::to_string(layer) + ",";
  return s;
}

struct RankState {
  std::optional<StudyResult> shell;                      // rank 0: the first job's study, its jobs moved out
  std::vector<std::pair<int, LayerKindResult>> results;  // group leaders: (job index, result)
};

// One job of the group, every rank of the group together.
void runGroupJob(const DumpReader& reader, const StudyOptions& options, const std::pair<int, Kind>& job,
                 int index, Backend& backend, Communicator& group, const TaskControl* control,
                 RankState& state) {
  StudyOptions one = options;
  one.layers = {job.first};
  one.kinds = {job.second};
  one.attention.enabled = false;  // measured on rank 0 once every job is in
  try {
    StudyResult study = runStudy(reader, one, backend, control);
    if (group.size() > 1) checkPeers(group);  // every rank of the group finished the job
    if (group.rank() == 0) state.results.emplace_back(index, std::move(study.jobs.front()));
    if (!state.shell) {
      study.jobs.clear();
      state.shell = std::move(study);
    }
  } catch (const PeerFailed&) {
    throw;  // the group is in step already
  } catch (...) {
    if (group.size() > 1) reportFailure(group);  // in place of this rank's next collective
    throw;
  }
}

// A group leader's results as one message: (job index, length, bytes) each.
std::string packResults(const RankState& state) {
  std::string out;
  for (const auto& [index, result] : state.results) {
    const std::string bytes = encodeJobResult(result);
    const int32_t i = index;
    const uint64_t n = bytes.size();
    out.append(reinterpret_cast<const char*>(&i), sizeof(i));
    out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    out.append(bytes);
  }
  return out;
}

// Rank 0: every job's result from the leaders' messages, in job order.
std::vector<LayerKindResult> unpackResults(const std::vector<std::string>& messages, size_t jobs) {
  std::vector<std::optional<LayerKindResult>> slots(jobs);
  for (const std::string& blob : messages) {
    size_t pos = 0;
    while (pos < blob.size()) {
      int32_t index = 0;
      uint64_t n = 0;
      if (blob.size() - pos < sizeof(index) + sizeof(n)) throwInternal("job results", "truncated");
      std::memcpy(&index, blob.data() + pos, sizeof(index));
      std::memcpy(&n, blob.data() + pos + sizeof(index), sizeof(n));
      pos += sizeof(index) + sizeof(n);
      if (index < 0 || static_cast<size_t>(index) >= jobs || slots[static_cast<size_t>(index)] ||
          blob.size() - pos < n)
        throwInternal("job results", "job " + std::to_string(index) + " is out of place");
      slots[static_cast<size_t>(index)] = decodeJobResult(blob.substr(pos, static_cast<size_t>(n)));
      pos += static_cast<size_t>(n);
    }
  }
  std::vector<LayerKindResult> ordered;
  for (size_t j = 0; j < jobs; ++j) {
    if (!slots[j]) throwInternal("job results", "job " + std::to_string(j) + " is missing");
    ordered.push_back(std::move(*slots[j]));
  }
  return ordered;
}

// Gathers every job on rank 0 (each step agreed: a failure anywhere fails all) and
// completes the study there: shell, jobs in order, attention when asked for.
StudyResult assemble(const DumpReader& reader, const StudyOptions& options, Backend& backend,
                     Communicator& world, RankState& state, size_t jobs, const TaskControl* control,
                     std::chrono::steady_clock::time_point start) {
  std::string mine;
  agreeOnFailure(world, [&] { mine = packResults(state); });
  const std::vector<std::string> messages = world.gatherToRoot(mine);  // nothing here throws
  StudyResult result = state.shell ? std::move(*state.shell) : StudyResult{};
  agreeOnFailure(world, [&] {
    if (world.rank() != 0) return;
    result.jobs = unpackResults(messages, jobs);
    result.backendName += " on " + std::to_string(world.size()) + " ranks";
    if (options.attention.enabled) {
      std::vector<int> layers;
      for (const LayerKindResult& job : result.jobs) {
        if (std::find(layers.begin(), layers.end(), job.layer) == layers.end()) layers.push_back(job.layer);
      }
      result.attention = measureAttention(reader, layers, quantizerSets(result), options, options.attention,
                                          backend, control);
    }
  });
  result.totalSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace

std::vector<std::pair<int, Kind>> studyJobs(const DumpInfo& info, const StudyOptions& options) {
  std::vector<int> layers = options.layers.empty() ? info.layers : options.layers;
  for (int layer : layers) {
    if (std::find(info.layers.begin(), info.layers.end(), layer) == info.layers.end())
      throwBadInput(info.path, "layers", "layer " + std::to_string(layer) + " is not in the dump");
  }
  std::vector<std::pair<int, Kind>> jobs;
  for (int layer : layers) {
    for (Kind kind : options.kinds) jobs.emplace_back(layer, kind);
  }
  return jobs;
}

JobPlan planJobs(int jobs, int ranks, int rank) {
  JobPlan plan;
  plan.groups = std::max(1, std::min(ranks, jobs));
  plan.group = rank % plan.groups;
  for (int j = plan.group; j < jobs; j += plan.groups) plan.jobs.push_back(j);
  plan.rounds = (jobs + plan.groups - 1) / plan.groups;
  return plan;
}

void agreeOnFailure(Communicator& world, const std::function<void()>& step) {
  const std::string failure = failureOf(step, world.rank());
  if (world.allReduceMax(failure.empty() ? 0 : 1) == 0) return;
  const std::vector<std::string> all = world.gatherToRoot(failure);
  std::string chosen;
  for (const std::string& f : all) {  // the lowest rank with an error of its own, else any
    if (!f.empty() && f[0] == 0) {
      chosen = f;
      break;
    }
    if (!f.empty() && chosen.empty()) chosen = f;
  }
  throwDecoded(world.broadcastFromRoot(chosen), world.size());
}

StudyResult runStudyDistributed(const DumpReader& reader, const StudyOptions& options, Backend& backend,
                                Communicator& world, const TaskControl* control,
                                const DistributedOptions& distributed) {
  const auto start = std::chrono::steady_clock::now();
  const DumpInfo& info = reader.info();
  std::vector<std::pair<int, Kind>> jobs;
  JobPlan plan;
  // Setup, agreed by all: the same dump everywhere, valid options, this rank's layers ready.
  const std::string fingerprint = world.broadcastFromRoot(dumpFingerprint(info));
  agreeOnFailure(world, [&] {
    if (fingerprint != dumpFingerprint(info))
      throwBadInput(info.path, "", "this rank opened a dump other than rank 0's (shape or layers differ)");
    validateConfig(options.config, info.headDim);
    splitTokens(info.tokens, info.sequenceStarts, options.config.heldOutFraction);
    jobs = studyJobs(info, options);
    if (jobs.empty()) throwBadInput("", "kinds", "no kind selected");
    plan = planJobs(static_cast<int>(jobs.size()), world.size(), world.rank());
    std::vector<std::pair<int, Kind>> mine;
    for (int j : plan.jobs) mine.push_back(jobs[static_cast<size_t>(j)]);
    if (distributed.prepare) distributed.prepare(mine);
  });
  const std::unique_ptr<Communicator> group = world.split(plan.group, world.rank());
  const std::unique_ptr<Backend> sharded = group->size() > 1 ? makeShardedBackend(backend, *group) : nullptr;
  Backend& jobBackend = sharded ? *sharded : backend;

  RankState state;
  // Rounds: in round i each group runs its i-th job; after each round all ranks learn
  // whether any failed, so none trains on for hours after another has failed.
  agreeOnFailure(world, [&] {
    std::exception_ptr failure;
    for (int round = 0; round < plan.rounds; ++round) {
      if (!failure && round < static_cast<int>(plan.jobs.size())) {
        const int j = plan.jobs[static_cast<size_t>(round)];
        const TaskControl ctl =
            subControl(control, static_cast<double>(round) / plan.rounds, 1.0 / plan.rounds, "");
        try {
          runGroupJob(reader, options, jobs[static_cast<size_t>(j)], j, jobBackend, *group, &ctl, state);
        } catch (...) {
          failure = std::current_exception();
        }
      }
      if (world.allReduceMax(failure ? 1 : 0) != 0) break;  // the same round on every rank
    }
    if (failure) std::rethrow_exception(failure);
  });
  return assemble(reader, options, backend, world, state, jobs.size(), control, start);
}

}  // namespace kvq
