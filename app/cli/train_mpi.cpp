#include "train_mpi.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <sstream>
#include <vector>

#include "commands.h"
#include "config_flags.h"
#include "kvq/base/error.h"
#include "kvq/base/file_identity.h"
#include "kvq/dist/distributed_study.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_npz.h"
#include "kvq/isolate/open_file.h"
#include "output_paths.h"
#include "progress_bar.h"
#include "tables.h"
#ifdef KVQ_HAVE_MPI
#include "kvq/dist/mpi_session.h"
#endif

namespace kvq::cli {
namespace {

std::string hostName() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0) return {};
  return name.data();
}

// The file rank 0 validated, as it saw it: "host\ndevice inode size mtime".
std::string describeValidatedFile(const FileIdentity& id) {
  std::ostringstream out;
  out << hostName() << '\n' << id.device << ' ' << id.inode << ' ' << id.size << ' ' << id.mtimeNs;
  return out.str();
}

// Throws Error(BadInput) unless `mine` is the file rank 0 described. On another host
// the device number may differ for the same file of a network file system: there
// the inode, size and modification time must match.
void requireRootsFile(const std::string& path, const std::string& described, const FileIdentity& mine) {
  std::istringstream in(described);
  std::string host;
  FileIdentity root;
  std::getline(in, host);
  if (!(in >> root.device >> root.inode >> root.size >> root.mtimeNs))
    throwInternal("rank 0's file identity", "malformed");
  if (host != hostName()) root.device = mine.device;
  requireSameFile(path, root, mine);
}

// The layers a rank reads: those of its jobs, and on rank 0 with --attention every
// layer of the study (it measures attention on all of them). Ascending.
std::vector<int> layersRead(const std::vector<std::pair<int, Kind>>& jobs, const DumpInfo& info,
                            const StudyOptions& study, bool root) {
  std::vector<int> layers;
  layers.reserve(jobs.size());
  for (const auto& job : jobs) layers.push_back(job.first);
  if (root && study.attention.enabled) {
    const std::vector<std::pair<int, Kind>> all = studyJobs(info, study);
    layers.reserve(layers.size() + all.size());
    for (const auto& job : all) layers.push_back(job.first);
  }
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  return layers;
}

#ifdef KVQ_HAVE_MPI
// Every rank's reader of the dump. Isolated (the default): rank 0's validator child
// checks the structure before any rank parses the file; each rank then opens it only
// if it is the file rank 0 validated. A refusal fails every rank with one message.
std::unique_ptr<DumpReader> openOnRanks(Communicator& world, TrainArgs& a, const OpenPolicy& policy,
                                        StudyOptions& study, FileIdentity& identity) {
  EngineOptions& o = a.engine;
  const bool root = world.rank() == 0;
  std::string validated;
  agreeOnFailure(world, [&] {
    o.dump = resolveDump(o.dump, "train");
    if (root) {  // rank 0 writes: its paths are the ones that matter
      checkOutputPath("--out", a.out);
      checkOutputPath("--npz", a.npz);
      checkReportOutputs(o);
    }
    study = buildStudyOptions(o, buildConfig(o));
    study.attention = buildAttentionOptions(a.attention, a.attention.enabled);
    if (root && policy.isolate) {
      const FileIdentity id = identifyFile(o.dump);
      validateDumpIsolated(o.dump, id, {}, policy);
      validated = describeValidatedFile(id);
    }
  });
  validated = world.broadcastFromRoot(validated);
  std::unique_ptr<DumpReader> reader;
  agreeOnFailure(world, [&] {
    OpenOptions open;
    open.scanValues = false;  // each rank has the layers it reads checked (below), not the whole file
    if (policy.isolate) {
      identity = identifyFile(o.dump);
      requireRootsFile(o.dump, validated, identity);
      open.expectedIdentity = identity;
    }
    reader = DumpReader::open(o.dump, open);
  });
  return reader;
}

void trainOnRanks(Communicator& world, TrainArgs& a) {
  const bool root = world.rank() == 0;
  const OpenPolicy policy = openPolicy(a.open);
  StudyOptions study;
  FileIdentity identity;
  const std::unique_ptr<DumpReader> reader = openOnRanks(world, a, policy, study, identity);
  std::unique_ptr<Backend> backend;
  agreeOnFailure(world, [&] { backend = makeEngineBackend(a.engine); });
  ProgressBar bar;
  const TaskControl* control = root ? bar.control() : nullptr;
  DistributedOptions distributed;
  distributed.prepare = [&](const std::vector<std::pair<int, Kind>>& jobs) {
    const std::vector<int> layers = layersRead(jobs, reader->info(), study, root);
    if (policy.isolate) {
      validateDumpIsolated(reader->info().path, identity, layers, policy, control);
    } else {
      scanLayers(
          *reader, layers, [](LayerStats&&) {}, control);
    }
  };
  const StudyResult result = runStudyDistributed(*reader, study, *backend, world, control, distributed);
  agreeOnFailure(world, [&] {
    if (!root) return;
    bar.finish();
    printStudyTable(result);
    printAttentionTable(result.attention);
    const CodebookFile file = codebookFileFromStudy(result);
    if (!a.out.empty()) {
      writeCodebookFile(a.out, file);
      std::printf("wrote %s\n", a.out.c_str());
    }
    if (!a.npz.empty()) {
      writeCodebookNpz(a.npz, file);
      std::printf("wrote %s\n", a.npz.c_str());
    }
    writeStudyReports(a.engine, result);
  });
}
#endif

}  // namespace

bool trainUnderMpi() {
#ifdef KVQ_HAVE_MPI
  return mpi::launchedByMpi();
#else
  return false;
#endif
}

void runTrainDistributed(TrainArgs& args, const CLI::App* cmd) {
#ifdef KVQ_HAVE_MPI
  mpi::Session session;
  const std::unique_ptr<Communicator> world = session.world();
  args.engine.gpuSlot = session.nodeLocalRank();  // the ranks of a node each on their own GPU
  try {
    if (!args.also.empty()) throwBadInput("", "--also", "not supported under MPI (train in one process)");
    trainOnRanks(*world, args);
  } catch (const Error& e) {
    // Failures are agreed: every rank is here. Rank 0 prints the one message before any rank
    // leaves: a rank that exited first made mpirun abort the job, and it could kill rank 0
    // before rank 0 had printed (1 run in about 10 of the failing-rank test).
    if (world->rank() == 0) {
      const std::string line = "kvq: error: " + presentError(e, cmd) + "\n";
      std::fputs(line.c_str(), stderr);
      std::fflush(stderr);
    }
    (void)world->allReduceMax(0);  // every rank waits for that line
    throw SilentExit{exitCodeOf(e)};
  }
#else
  (void)args;
  (void)cmd;
  (void)requireRootsFile;
  (void)describeValidatedFile;
  (void)layersRead;
  throwInternal("kvq train", "this kvq was built without MPI");
#endif
}

}  // namespace kvq::cli
