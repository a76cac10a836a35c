// kvq eval DUMP --codebooks FILE: measure stored codebooks on a dump's held-out
// tokens (the split of the stored config, or --held-out) without training.
#include <CLI/CLI.hpp>

#include <memory>

#include "attention_options.h"
#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"
#include "tables.h"

namespace kvq::cli {

void registerEval(CLI::App& root) {
  struct EvalArgs {
    EngineOptions engine;
    OpenArgs open;
    AttentionCliOptions attention;
    std::string codebooks;
  };
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = root.add_subcommand("eval", "Measure stored codebooks on a dump (no training)");
  addDumpArgument(cmd, args->engine);
  cmd->add_option("--codebooks", args->codebooks, "Codebook file written by kvq train")->required();
  addHeldOutOption(cmd, args->engine);
  addSelectionOptions(cmd, args->engine);
  addComputeOptions(cmd, args->engine);
  addAttentionOptions(cmd, args->attention, true);
  addReportOptions(cmd, args->engine);
  addOpenOptions(cmd, args->open, true);
  cmd->callback([args]() {
    EngineOptions& o = args->engine;
    o.dump = resolveDump(o.dump, "eval");
    checkReportOutputs(o);  // fail now, not after the evaluation
    const CodebookFile file = openCodebooks(args->codebooks, args->open);
    const RvqConfig config = overrideConfig(file.config, o);
    StudyOptions study = buildStudyOptions(o, config);
    study.attention = buildAttentionOptions(args->attention, args->attention.enabled);
    ProgressBar bar;
    const auto reader = openDumpForWork(o.dump, args->open, bar.control());
    bar.finish();
    if (reader->info().headDim != file.headDim || reader->info().numKvHeads != file.numKvHeads) {
      throwBadInput(args->codebooks, "/ head_dim, num_kv_heads",
                    "the codebooks were trained for another head shape");
    }
    auto backend = makeEngineBackend(o);
    StudyResult result =
        evaluateCodebooks(*reader, file.sets, args->codebooks, study, *backend, bar.control());
    bar.finish();
    printStudyTable(result);
    printAttentionTable(result.attention);
    writeStudyReports(o, result);
  });
}

}  // namespace kvq::cli
