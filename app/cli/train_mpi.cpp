#include "train_mpi.h"

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "commands.h"
#include "kvq/base/error.h"
#include "kvq/dist/distributed_study.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_npz.h"
#include "output_paths.h"
#include "progress_bar.h"
#include "tables.h"
#ifdef KVQ_HAVE_MPI
#include "kvq/dist/mpi_session.h"
#endif

namespace kvq::cli {
namespace {

// The open-time value check (no NaN/Inf) of the datasets of `jobs` only.
void checkJobValues(const DumpReader& reader, const std::vector<std::pair<int, Kind>>& jobs) {
  const DumpInfo& info = reader.info();
  for (const auto& [layer, kind] : jobs) {
    reader.forEachChunk(layer, kind, 1024, [&, layer = layer, kind = kind](const Slab& slab) {
      for (size_t i = 0; i < slab.data.size(); ++i) {
        const float v = slab.data[i];
        if (std::isfinite(v)) continue;
        const auto perToken = static_cast<size_t>(slab.heads) * static_cast<size_t>(slab.dim);
        throwBadInput(info.path, "/layers/" + std::to_string(layer) + "/" + kindName(kind),
                      std::string(std::isnan(v) ? "NaN" : (v > 0 ? "Inf" : "-Inf")) + " at token " +
                          std::to_string(slab.tokenBegin + static_cast<int64_t>(i / perToken)) + ", head " +
                          std::to_string((i % perToken) / static_cast<size_t>(slab.dim)) + ", channel " +
                          std::to_string(i % static_cast<size_t>(slab.dim)));
      }
    });
  }
}

int exitCodeOf(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::BadInput:
      return 2;
    case ErrorKind::Cancelled:
      return 130;
    default:
      return 1;
  }
}

#ifdef KVQ_HAVE_MPI
void trainOnRanks(Communicator& world, EngineOptions& o, const std::string& out, const std::string& npz) {
  const bool root = world.rank() == 0;
  std::unique_ptr<DumpReader> reader;
  std::unique_ptr<Backend> backend;
  StudyOptions study;
  agreeOnFailure(world, [&] {
    o.dump = resolveDump(o.dump, "train");
    if (root) {  // rank 0 writes: its paths are the ones that matter
      checkOutputPath("--out", out);
      checkOutputPath("--npz", npz);
      checkReportOutputs(o);
    }
    study = buildStudyOptions(o, buildConfig(o));
    OpenOptions open;
    open.scanValues = false;  // each rank checks the layers it reads (below), not the whole file
    reader = DumpReader::open(o.dump, open);
    backend = makeEngineBackend(o);
  });
  DistributedOptions distributed;
  distributed.prepare = [&](const std::vector<std::pair<int, Kind>>& jobs) { checkJobValues(*reader, jobs); };
  ProgressBar bar;
  const StudyResult result =
      runStudyDistributed(*reader, study, *backend, world, root ? bar.control() : nullptr, distributed);
  agreeOnFailure(world, [&] {
    if (!root) return;
    bar.finish();
    printStudyTable(result);
    const CodebookFile file = codebookFileFromStudy(result);
    if (!out.empty()) {
      writeCodebookFile(out, file);
      std::printf("wrote %s\n", out.c_str());
    }
    if (!npz.empty()) {
      writeCodebookNpz(npz, file);
      std::printf("wrote %s\n", npz.c_str());
    }
    writeStudyReports(o, result);
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

void runTrainDistributed(EngineOptions& o, const std::string& out, const std::string& npz) {
#ifdef KVQ_HAVE_MPI
  mpi::Session session;
  const std::unique_ptr<Communicator> world = session.world();
  try {
    trainOnRanks(*world, o, out, npz);
  } catch (const Error& e) {
    if (world->rank() == 0) throw;  // main prints it once
    throw SilentExit{exitCodeOf(e)};
  }
#else
  (void)o;
  (void)out;
  (void)npz;
  (void)checkJobValues;
  (void)exitCodeOf;
  throwInternal("kvq train", "this kvq was built without MPI");
#endif
}

}  // namespace kvq::cli
