#include "model_options.h"

#include <CLI/CLI.hpp>

#include "kvq/base/error.h"

namespace kvq::cli {

void addMemoryBudgetOption(CLI::App* cmd, double& memoryBudgetGiB) {
  cmd->add_option("--memory-budget", memoryBudgetGiB, "Largest float32 model accepted, GiB (default 8)");
}

uint64_t memoryBudgetBytes(double memoryBudgetGiB) {
  if (!(memoryBudgetGiB > 0) || memoryBudgetGiB > 1 << 20)
    throwBadInput("", "--memory-budget", "must be > 0 GiB");
  return static_cast<uint64_t>(memoryBudgetGiB * static_cast<double>(uint64_t{1} << 30));
}

std::unique_ptr<DecoderModel> loadModelFor(const std::string& path, uint64_t memoryBudget,
                                           const CodebookFile* codebooks, const std::string& codebookPath,
                                           const TaskControl* control) {
  ModelLoadOptions load;
  load.memoryBudget = memoryBudget;
  load.control = control;
  auto model = loadDecoderModel(path, load);
  if (codebooks &&
      (codebooks->headDim != model->config.headDim || codebooks->numKvHeads != model->config.numKvHeads)) {
    throwBadInput(codebookPath, "/ head_dim, num_kv_heads",
                  "the codebooks were trained for another head shape");
  }
  return model;
}

}  // namespace kvq::cli
