// kvq train DUMP ...: train RVQ codebooks per layer and kind (the paper's recipe by
// default), measure them on held-out tokens next to the KIVI baselines, and write
// the codebook file, an optional npz export and reports.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <vector>

#include "attention_options.h"
#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_npz.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"
#include "tables.h"
#include "train_mpi.h"

namespace kvq::cli {

void registerTrain(CLI::App& root) {
  auto args = std::make_shared<TrainArgs>();
  CLI::App* cmd =
      root.add_subcommand("train", "Train RVQ codebooks on a dump and measure them on held-out tokens");
  addTrainingOptions(cmd, args->engine);
  cmd->add_option("--out", args->out, "Codebook file to write (HDF5, rvq-codebooks v1)");
  cmd->add_option("--npz", args->npz, "Also export the codebooks as a NumPy .npz");
  cmd->add_option("--also", args->also,
                  "Also train on this dump's training tokens, pooled with DUMP's per layer x kind "
                  "(repeatable; shapes must agree; metrics are DUMP's held-out tokens')")
      ->allow_extra_args(false);
  addAttentionOptions(cmd, args->attention, true);
  addReportOptions(cmd, args->engine);
  addOpenOptions(cmd, args->open, true);
  cmd->callback([args, cmd]() {
    EngineOptions& o = args->engine;
    if (trainUnderMpi()) {  // mpirun -n N kvq train ...: train_mpi.h
      runTrainDistributed(*args, cmd);
      return;
    }
    o.dump = resolveDump(o.dump, "train");
    checkOutputPath("--out", args->out);  // fail now, not after the training
    checkOutputPath("--npz", args->npz);
    checkReportOutputs(o);
    const RvqConfig config = buildConfig(o);
    StudyOptions study = buildStudyOptions(o, config);
    study.attention = buildAttentionOptions(args->attention, args->attention.enabled);
    ProgressBar bar;
    const auto reader = openDumpForWork(o.dump, args->open, bar.control());
    bar.finish();
    std::vector<std::unique_ptr<DumpReader>> also;  // each through the same isolated open
    for (const std::string& path : args->also) {
      also.push_back(openDumpForWork(path, args->open, bar.control()));
      bar.finish();
      study.alsoTrainOn.push_back(also.back().get());
    }
    validateConfig(config, reader->info().headDim);  // before any training
    auto backend = makeEngineBackend(o);
    const StudyResult result = runStudy(*reader, study, *backend, bar.control());
    bar.finish();
    printStudyTable(result);
    printAttentionTable(result.attention);
    const CodebookFile file = codebookFileFromStudy(result);
    if (!args->out.empty()) {
      writeCodebookFile(args->out, file);
      std::printf("wrote %s\n", args->out.c_str());
    }
    if (!args->npz.empty()) {
      writeCodebookNpz(args->npz, file);
      std::printf("wrote %s\n", args->npz.c_str());
    }
    writeStudyReports(o, result);
  });
}

}  // namespace kvq::cli
