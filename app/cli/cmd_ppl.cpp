// kvq ppl DUMP --model FILE.gguf [--codebooks cb.h5] [--depths 1-8] [--allocation] [--kivi 2,3,4]
// [--sinks S] [--rvq-window R] [--kivi-window R] [--layers ...] [--json|--csv]: perplexity and KL divergence
// of the model with a quantized key/value cache, on the dump's own tokens (docs/model.md).
#include <omp.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "commands.h"
#include "engine_options.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/cache_allocation.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/perplexity.h"
#include "kvq/model/ppl_report.h"
#include "model_options.h"
#include "open_options.h"
#include "progress_bar.h"

namespace kvq::cli {
namespace {

struct PplArgs {
  std::string dump, model, codebooks, depths, kivi, layers;
  int kiviWindow = 0, kiviTokenGroup = 32, kiviChannelGroup = 32, sinks = 0, rvqWindow = 0;
  bool identity = false, json = false, csv = false, noCheckDump = false, tf32 = false, allocation = false;
  int64_t maxTokens = 0, amortise = 0;
  double memoryBudgetGiB = 8.0;
  std::string backend = "auto";
  int threads = 0;
  OpenArgs open;
};

std::vector<CacheVariantSpec> buildVariants(const PplArgs& a, const std::optional<CodebookFile>& codebooks,
                                            int numLayers) {
  std::vector<CacheVariantSpec> variants;
  if (a.identity) variants.push_back({});
  if (codebooks && !(a.allocation && a.depths.empty())) {
    const std::vector<int> depths =
        a.depths.empty() ? parseIntList("1-" + std::to_string(codebooks->config.depth), "--depths")
                         : parseIntList(a.depths, "--depths");
    for (int k : depths) variants.push_back(rvqVariant(k, a.sinks, a.rvqWindow));
  } else if (!codebooks && !a.depths.empty()) {
    throwBadInput("", "--depths", "RVQ depths need --codebooks");
  }
  if (a.allocation) {  // the file's allocation runs with the exact tokens it was made for
    if (!codebooks || !codebooks->allocation) {
      throwBadInput(a.codebooks, "/allocation", "--allocation needs a codebook file written by kvq allocate");
    }
    variants.push_back(allocationVariant(*codebooks->allocation, numLayers));
  }
  if (!a.kivi.empty()) {
    for (int b : parseIntList(a.kivi, "--kivi")) {
      CacheVariantSpec s;
      s.kind = CacheVariantKind::Kivi;
      s.bits = b;
      s.tokenGroup = a.kiviTokenGroup;
      s.channelGroup = a.kiviChannelGroup;
      s.window = a.kiviWindow;
      s.sinks = a.sinks;
      variants.push_back(s);
    }
  }
  return variants;
}

void runPpl(const PplArgs& a) {
  if (a.json && a.csv) throwBadInput("", "--json, --csv", "choose one output format");
  const uint64_t memoryBudget = memoryBudgetBytes(a.memoryBudgetGiB);
  if (a.maxTokens < 0 || a.maxTokens == 1) throwBadInput("", "--max-tokens", "must be 0 (all) or at least 2");
  if (a.threads > 0) omp_set_num_threads(a.threads);
  std::optional<CodebookFile> codebooks;
  if (!a.codebooks.empty()) codebooks = openCodebooks(a.codebooks, a.open);
  PplOptions options;
  if (!a.layers.empty()) options.layers = parseIntList(a.layers, "--layers");
  options.codebooks = codebooks ? &*codebooks : nullptr;
  options.codebookPath = a.codebooks;
  options.backend = a.backend;
  options.allowTf32 = a.tf32;
  options.threads = a.threads;
  options.maxTokens = a.maxTokens;
  options.checkDump = !a.noCheckDump;
  options.amortiseTokens = a.amortise;
  ProgressBar bar;
  // Validated and scanned in a limited child first, as every dump (kvq/isolate/open_file.h).
  const auto dump = openDumpForWork(a.dump, a.open, bar.control());
  const auto model =
      loadModelFor(a.model, memoryBudget, codebooks ? &*codebooks : nullptr, a.codebooks, bar.control());
  options.variants = buildVariants(a, codebooks, model->config.numLayers);
  const PplReport report = evaluatePerplexity(*model, *dump, options, bar.control());
  bar.finish();
  std::cerr << "kvq: " << report.passNote << "\n";
  if (a.json) {
    std::cout << pplReportJson(report);
  } else if (a.csv) {
    std::cout << pplReportCsv(report);
  } else {
    std::printf("model %s (%s), %zu sequences, %zu quantized layers, %.1f s\n", model->config.name.c_str(),
                model->config.architecture.c_str(), report.sequenceTokens.size(), report.layers.size(),
                report.seconds);
    std::cout << pplReportTable(report);
  }
}

}  // namespace

void registerPpl(CLI::App& root) {
  auto a = std::make_shared<PplArgs>();
  CLI::App* cmd = root.add_subcommand(
      "ppl", "Perplexity and KL divergence of the model with a quantized KV cache, on the dump's tokens");
  cmd->add_option("dump", a->dump, "KV dump with /tokens (default: the bundled sample)");
  cmd->add_option("--model", a->model, "The model the dump was made with (GGUF v2/v3, llama or qwen2)")
      ->required();
  cmd->add_option("--codebooks", a->codebooks, "Codebook file (kvq train): RVQ variants at its layers");
  cmd->add_option("--depths", a->depths, "RVQ depths k to evaluate, e.g. 1-8 or 4,6,8 (default: 1..K)");
  cmd->add_flag("--allocation", a->allocation,
                "Also run the codebook file's bit allocation (kvq allocate), with its sinks and window");
  cmd->add_option("--sinks", a->sinks, "First S tokens of each sequence kept exact (RVQ and KIVI variants)");
  cmd->add_option("--rvq-window", a->rvqWindow,
                  "RVQ: sliding window of the last R tokens kept exact (0 = none)");
  cmd->add_option("--amortise", a->amortise,
                  "Count RVQ codebook storage in bits/channel, shared by N cached tokens (0 = not counted)");
  cmd->add_option("--kivi", a->kivi, "KIVI bit widths to evaluate, e.g. 2,3,4");
  cmd->add_option("--kivi-window", a->kiviWindow,
                  "KIVI's full-precision recent window R in tokens (0 = none)");
  cmd->add_option("--kivi-token-group", a->kiviTokenGroup, "KIVI key group n_t (tokens per channel group)");
  cmd->add_option("--kivi-channel-group", a->kiviChannelGroup,
                  "KIVI value group n_c (channels per token group)");
  cmd->add_flag("--identity", a->identity,
                "Also run an untouched cache through the variant path (KL must be 0)");
  cmd->add_option("--layers", a->layers,
                  "Quantized layers, e.g. 0-29 (default: the codebooks' layers, else all)");
  cmd->add_option("--max-tokens", a->maxTokens,
                  "Evaluate only the first N tokens of each sequence (0 = all)");
  addMemoryBudgetOption(cmd, a->memoryBudgetGiB);
  cmd->add_flag("--no-check-dump", a->noCheckDump, "Skip comparing the reference keys/values with the dump");
  cmd->add_option("--backend", a->backend,
                  "Backend of RVQ encoding and of the pass's weight products (cuBLAS): cpu, cuda or auto");
  cmd->add_flag("--tf32", a->tf32,
                "cuBLAS: allow TensorFloat-32 products (faster; logits leave the 1e-4 tolerance)");
  cmd->add_option("--threads", a->threads, "CPU threads (default: all)");
  cmd->add_flag("--json", a->json, "Print the report as JSON");
  cmd->add_flag("--csv", a->csv, "Print the report as CSV");
  addOpenOptions(cmd, a->open, true);
  cmd->callback([a]() {
    a->dump = resolveDump(a->dump, "ppl");
    runPpl(*a);
  });
}

}  // namespace kvq::cli
