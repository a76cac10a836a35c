// kvq allocate DUMP --model FILE.gguf --codebooks cb.h5 --budget B [--context T] [--amortise N]
// [--sinks S] [--rvq-window R] [--depths 1-6] [--losses table.csv | --save-losses table.csv]
// [--out alloc.h5]: measure each quantizer's loss with the model in the loop and choose one depth
// per layer x kind within an average bits-per-channel budget that counts everything
// (docs/model.md "Bit budget").
#include <omp.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/cache_allocation.h"
#include "kvq/model/decoder_model.h"
#include "model_options.h"
#include "open_options.h"
#include "output_paths.h"
#include "progress_bar.h"

namespace kvq::cli {
namespace {

struct AllocateArgs {
  std::string dump, model, codebooks, depths, layers, losses, saveLosses, out, method = "exact";
  double budget = 0;
  AllocationOptions options;
  double memoryBudgetGiB = 8.0;
  OpenArgs open;
};

std::string readText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throwBadInput(path, "", "cannot open the loss table");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The loss table: read back (--losses) or measured on the dump with the model.
std::vector<BudgetItem> lossTable(const AllocateArgs& a, const CodebookFile& codebooks) {
  if (!a.losses.empty()) return parseLossTableCsv(readText(a.losses), a.losses);
  if (a.model.empty()) throwBadInput("", "--model", "needed to measure the losses (or give --losses)");
  const uint64_t memoryBudget = memoryBudgetBytes(a.memoryBudgetGiB);
  ProgressBar bar;
  // Validated and scanned in a limited child first, as every dump (kvq/isolate/open_file.h).
  const auto dump = openDumpForWork(a.dump, a.open, bar.control());
  const auto model = loadModelFor(a.model, memoryBudget, &codebooks, a.codebooks, bar.control());
  std::vector<BudgetItem> items =
      measureQuantizerLosses(*model, *dump, codebooks, a.codebooks, a.options, bar.control());
  bar.finish();
  return items;
}

void printAllocation(const CacheAllocation& c) {
  std::printf(
      "budget %.4f bits/channel -> %.4f used (%s; context %lld tokens, codebooks over %lld, sinks %d, "
      "window %d)\nloss %.6g (%s)\n",
      c.budget, c.bitsPerChannel, c.method.c_str(), static_cast<long long>(c.contextTokens),
      static_cast<long long>(c.amortiseTokens), c.sinks, c.window, c.loss, c.lossName.c_str());
  std::printf("%5s  %6s %8s %10s  %6s %8s %10s\n", "layer", "K dep", "K bits", "K loss", "V dep", "V bits",
              "V loss");
  for (size_t i = 0; i < c.layers.size(); ++i) {
    if (c.kinds[i] != Kind::Keys) continue;
    std::printf("%5d  %6d %8.3f %10.4g", c.layers[i], c.depths[i], c.bits[i], c.losses[i]);
    for (size_t j = 0; j < c.layers.size(); ++j) {
      if (c.layers[j] == c.layers[i] && c.kinds[j] == Kind::Values)
        std::printf("  %6d %8.3f %10.4g", c.depths[j], c.bits[j], c.losses[j]);
    }
    std::printf("\n");
  }
}

void runAllocate(AllocateArgs& a) {
  CodebookFile codebooks = openCodebooks(a.codebooks, a.open);
  if (!a.depths.empty()) a.options.depths = parseIntList(a.depths, "--depths");
  if (!a.layers.empty()) a.options.layers = parseIntList(a.layers, "--layers");
  validateAllocationOptions(a.options, codebooks);
  const BudgetMethod method = parseBudgetMethod(a.method);
  if (!a.out.empty()) checkOutputPath("--out", a.out);
  if (a.options.threads > 0) omp_set_num_threads(a.options.threads);
  std::vector<BudgetItem> items = lossTable(a, codebooks);
  if (!a.saveLosses.empty()) atomicWriteFile(a.saveLosses, lossTableCsv(items));
  priceQuantizerOptions(items, codebooks, a.options);
  const CacheAllocation allocation = allocateCache(items, a.budget, method, a.options);
  printAllocation(allocation);
  if (!a.out.empty()) {
    codebooks.allocation = allocation;
    writeCodebookFile(a.out, codebooks);
    std::printf("wrote %s\n", a.out.c_str());
  }
}

}  // namespace

void registerAllocate(CLI::App& root) {
  auto a = std::make_shared<AllocateArgs>();
  CLI::App* cmd = root.add_subcommand(
      "allocate",
      "Choose an RVQ depth per layer x kind within a bits-per-channel budget (model in the loop)");
  cmd->add_option("dump", a->dump, "Calibration dump with /tokens (other text than you evaluate on)");
  cmd->add_option("--model", a->model, "The model the dump was made with (GGUF); not needed with --losses");
  cmd->add_option("--codebooks", a->codebooks, "Codebook file (kvq train) whose depths are allocated")
      ->required();
  cmd->add_option("--budget", a->budget, "Average bits per channel, everything counted")->required();
  cmd->add_option("--context", a->options.basis.tokens,
                  "Sequence length the exact tokens are counted over (default 2048)");
  cmd->add_option("--amortise", a->options.basis.amortiseTokens,
                  "Cached tokens the codebook storage is shared by (default 32768; 0 = not counted)");
  cmd->add_option("--sinks", a->options.sinks, "First S tokens of each sequence kept exact");
  cmd->add_option("--rvq-window", a->options.window, "Sliding window of the last R tokens kept exact");
  cmd->add_option("--depths", a->depths, "Depths offered to each quantizer, e.g. 1-6 (default 1..K)");
  cmd->add_option("--layers", a->layers, "Layers allocated (default: the codebook file's)");
  cmd->add_option("--calibration-tokens", a->options.calibrationTokens,
                  "First tokens of each dump sequence the losses are measured on (default 256; 0 = all)");
  cmd->add_option("--method", a->method, "exact (knapsack) or greedy (marginal gain per bit)");
  cmd->add_option("--losses", a->losses, "Read the loss table (CSV of --save-losses) instead of measuring");
  cmd->add_option("--save-losses", a->saveLosses, "Write the measured loss table (CSV)");
  cmd->add_option("--out", a->out, "Write the codebooks with the allocation (/allocation) here");
  addMemoryBudgetOption(cmd, a->memoryBudgetGiB);
  cmd->add_option("--backend", a->options.backend, "RVQ encoding backend: cpu, cuda or auto");
  cmd->add_option("--threads", a->options.threads, "CPU threads (default: all)");
  addOpenOptions(cmd, a->open, true);
  cmd->callback([a]() {
    if (a->losses.empty()) a->dump = resolveDump(a->dump, "allocate");
    runAllocate(*a);
  });
}

}  // namespace kvq::cli
