// kvq sweep DUMP --codebook-sizes ... --depths ...: rate-distortion table. One
// training per codebook size at the largest depth gives every depth; the KIVI
// baselines appear at their own bits per channel.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/study/report.h"
#include "kvq/study/sweep.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"
#include "tables.h"

namespace kvq::cli {

void registerSweep(CLI::App& root) {
  struct SweepArgs {
    EngineOptions engine;
    OpenArgs open;
    std::string sizes = "256,1024,2048", depths = "1-8", csv, json;
  };
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd =
      root.add_subcommand("sweep", "Rate-distortion sweep over codebook sizes and depths, with baselines");
  addTrainingOptions(cmd, args->engine);
  cmd->add_option("--codebook-sizes", args->sizes, "Codebook sizes C, e.g. 256,1024,2048")
      ->capture_default_str();
  cmd->add_option("--depths", args->depths, "Depths K, e.g. 1-8 or 2,4,8")->capture_default_str();
  cmd->add_option("--csv", args->csv, "Write the table as CSV");
  cmd->add_option("--json", args->json, "Write the table and every study as JSON");
  addOpenOptions(cmd, args->open, true);
  cmd->callback([args]() {
    EngineOptions& o = args->engine;
    o.dump = resolveDump(o.dump, "sweep");
    checkOutputPath("--csv", args->csv);  // fail now, not after the sweep
    checkOutputPath("--json", args->json);
    const std::vector<int> sizes = parseIntList(args->sizes, "--codebook-sizes");
    const std::vector<int> depths = parseIntList(args->depths, "--depths");
    RvqConfig config = buildConfig(o);
    config.codebookSize = sizes.back();
    config.depth = depths.back();
    const StudyOptions study = buildStudyOptions(o, config);
    ProgressBar bar;
    const auto reader = openDumpForWork(o.dump, args->open, bar.control());
    bar.finish();
    for (int c : sizes) {
      RvqConfig check = config;
      check.codebookSize = c;
      try {
        validateConfig(check, reader->info().headDim);
      } catch (const Error& e) {
        throwBadInput("", e.where() == "--codebook-size" ? "--codebook-sizes" : e.where(), e.problem());
      }
    }
    auto backend = makeEngineBackend(o);
    const SweepResult sweep = runSweep(*reader, study, sizes, depths, *backend, bar.control());
    bar.finish();
    printSweepTable(sweep);
    if (!args->csv.empty()) {
      atomicWriteFile(args->csv, sweepToCsv(sweep));
      std::printf("wrote %s\n", args->csv.c_str());
    }
    if (!args->json.empty()) {
      atomicWriteFile(args->json, sweepToJson(sweep).dump(2) + "\n");
      std::printf("wrote %s\n", args->json.c_str());
    }
  });
}

}  // namespace kvq::cli
