// Bit allocation with the model in the loop (beyond the paper, docs/model.md "Bit budget"): the
// loss of every RVQ quantizer (layer x kind) at every depth is measured as the model's output KL
// with only that quantizer quantized, then the allocator (kvq/study/bit_budget.h) picks one depth
// per quantizer that minimises the summed loss within an average bits-per-channel budget that
// counts everything (codes, scales, exact tokens, amortised codebooks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/io/codebook_file.h"
#include "kvq/model/cache_quantizer.h"
#include "kvq/model/decoder_model.h"
#include "kvq/study/bit_budget.h"

namespace kvq {

inline constexpr const char* kAllocationLossName =
    "model output KL(ref || quantized), nats per predicted token, one quantizer quantized at a time";

struct AllocationOptions {
  std::vector<int> depths;  // the settings offered to every quantizer (1..K); empty = 1..K
  int sinks = 0;            // exact tokens as the cache will run: the first S of each sequence
  int window = 0;           // and a sliding window of the last R
  CacheCostBasis basis{2048, 32768};
  int64_t calibrationTokens = 256;  // first tokens of each sequence of the calibration dump (0 = all)
  std::vector<int> layers;          // quantizers of these layers; empty = the codebook file's
  std::string backend = "auto";     // RVQ encoding backend
  int threads = 0;
};

// Throws Error(BadInput) naming the option: depths outside 1..K, negative sinks/window, a
// basis with no tokens, fewer than 2 calibration tokens.
void validateAllocationOptions(const AllocationOptions& options, const CodebookFile& codebooks);

// One item per (layer, kind) of the codebook file at options.layers, one option per depth with
// loss = mean output KL over the dump's predicted tokens (the first calibrationTokens of each
// sequence; use a dump of other text than the evaluation's) and bitsPerChannel from
// rvqQuantizerBits on options.basis. channels = H_kv x D. Progress and cancel through control.
std::vector<BudgetItem> measureQuantizerLosses(const DecoderModel& model, const DumpReader& dump,
                                               const CodebookFile& codebooks, const std::string& codebookPath,
                                               const AllocationOptions& options,
                                               const TaskControl* control = nullptr);

// Sets every option's bitsPerChannel from rvqQuantizerBits on options' basis, sinks and window
// (a loss table read back is priced for the basis asked now).
void priceQuantizerOptions(std::vector<BudgetItem>& items, const CodebookFile& codebooks,
                           const AllocationOptions& options);

// The allocation record of the best choice within budget (allocateBudget; BadInput "budget"
// when even the cheapest depths cost more).
CacheAllocation allocateCache(const std::vector<BudgetItem>& items, double budget, BudgetMethod method,
                              const AllocationOptions& options);

// The ppl variant running an allocation on a model of numLayers layers: Rvq, layerDepths from the
// record (layers it does not name stay exact), its sinks and window, named "alloc-<budget>b".
CacheVariantSpec allocationVariant(const CacheAllocation& allocation, int numLayers);

// The loss table as CSV, "layer,kind,depth,bits_per_channel,loss" then one row per option, and
// back (bits are re-priced by priceQuantizerOptions). parse throws BadInput naming path and line.
std::string lossTableCsv(const std::vector<BudgetItem>& items);
std::vector<BudgetItem> parseLossTableCsv(const std::string& text, const std::string& path);

}  // namespace kvq
