// kvq attention DUMP [--codebooks FILE]: what the quantizers do to attention on
// the dump's queries — RVQ codebooks from a file (e.g. trained on another dump)
// next to the KIVI baselines, without training.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "attention_options.h"
#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/io/codebook_file.h"
#include "kvq/io/codebook_fit.h"
#include "kvq/study/attention_report.h"
#include "kvq/study/report.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"

namespace kvq::cli {
namespace {

struct AttentionArgs {
  EngineOptions engine;
  AttentionCliOptions attention;
  std::string codebooks;
  OpenArgs open;
};

void writeReports(const EngineOptions& o, const AttentionResult& result, const std::string& dump,
                  const std::string& codebooks, int codebookSize) {
  if (!o.reportJson.empty()) {
    nlohmann::json j = {
        {"kvq_report", "attention"}, {"version", 1}, {"dump", dump}, {"codebooks_file", codebooks}};
    j.update(attentionToJson(result));
    atomicWriteFile(o.reportJson, j.dump(2) + "\n");
    std::printf("wrote %s\n", o.reportJson.c_str());
  }
  if (!o.reportCsv.empty()) {
    atomicWriteFile(o.reportCsv, withAttentionCsv(studyCsvHeader(), result, codebookSize));
    std::printf("wrote %s\n", o.reportCsv.c_str());
  }
}

void run(AttentionArgs& args) {
  EngineOptions& o = args.engine;
  o.dump = resolveDump(o.dump, "attention");
  checkReportOutputs(o);
  // Both files through the isolated open path, as every command that reads them.
  CodebookFile file;
  if (!args.codebooks.empty()) file = openCodebooks(args.codebooks, args.open);
  const RvqConfig config = overrideConfig(args.codebooks.empty() ? presetConfig("paper") : file.config, o);
  StudyOptions study = buildStudyOptions(o, config);
  const AttentionOptions attention = buildAttentionOptions(args.attention, true);
  ProgressBar bar;
  const auto reader = openDumpForWork(o.dump, args.open, bar.control());
  bar.finish();
  const DumpInfo& info = reader->info();
  std::vector<int> layers = study.layers;
  if (!args.codebooks.empty()) {
    checkCodebooksFitDump(file, args.codebooks, info, layers);
    if (layers.empty()) layers = codebookLayers(file);
  } else if (layers.empty()) {
    layers = info.layers;
  }
  auto backend = makeEngineBackend(o);
  const AttentionResult result =
      measureAttention(*reader, layers, file.sets, study, attention, *backend, bar.control());
  bar.finish();
  std::printf("dump     %s (%s)\n", info.path.c_str(), info.model.c_str());
  if (!args.codebooks.empty()) {
    std::printf("codebooks %s (preset %s, C=%d K=%d g=%d; trained on %s)\n", args.codebooks.c_str(),
                config.preset.c_str(), config.codebookSize, config.depth, config.groupSize,
                file.sourceDump.c_str());
    for (const std::string& path : file.alsoTrainedOn) std::printf("          and on %s\n", path.c_str());
  }
  printAttentionTable(result);
  writeReports(o, result, info.path, args.codebooks, config.codebookSize);
}

}  // namespace

void registerAttention(CLI::App& root) {
  auto args = std::make_shared<AttentionArgs>();
  CLI::App* cmd = root.add_subcommand(
      "attention",
      "Attention error of stored codebooks and KIVI baselines on a dump's queries (no training)");
  addDumpArgument(cmd, args->engine);
  cmd->add_option("--codebooks", args->codebooks,
                  "Codebook file written by kvq train (default: KIVI baselines only)");
  addHeldOutOption(cmd, args->engine);
  addSelectionOptions(cmd, args->engine);
  addAttentionOptions(cmd, args->attention, false);
  addComputeOptions(cmd, args->engine);
  addReportOptions(cmd, args->engine);
  addOpenOptions(cmd, args->open, true);
  cmd->callback([args]() { run(*args); });
}

}  // namespace kvq::cli
