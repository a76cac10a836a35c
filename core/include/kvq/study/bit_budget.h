// The bit budget: the user sets an average number of bits per channel for the whole cache; every
// quantizer (layer x kind) offers a menu of settings (depth, codebook size), each with its cost in
// bits per channel (everything counted: codes, scales, kept tokens, amortised codebook storage)
// and a measured loss. The allocator picks one setting per quantizer so that the summed loss is
// smallest while the channel-weighted average cost stays at or below the budget.
//
// Two methods: Exact solves this multiple-choice knapsack by dynamic programming over costs
// rounded *up* to a fine grid (so the true cost can never exceed the budget, and the result is
// optimal up to that rounding); Greedy starts every quantizer at its cheapest setting and keeps
// taking the upgrade with the largest loss decrease per bit that still fits (marginal gain per
// bit, looking past non-convex steps).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

struct BudgetOption {
  int depth = 0;              // stages used
  int codebookSize = 0;       // C of those stages
  double bitsPerChannel = 0;  // cost of this quantizer's channels with this setting (>= 0)
  double loss = 0;            // measured loss with this setting (lower is better)
};

struct BudgetItem {
  int layer = 0;
  Kind kind = Kind::Keys;
  double channels = 1;  // channels per token this quantizer covers (H x D): its cost's weight
  std::vector<BudgetOption> options;
};

enum class BudgetMethod { Exact, Greedy };
const char* budgetMethodName(BudgetMethod method);        // "exact", "greedy"
BudgetMethod parseBudgetMethod(const std::string& name);  // throws BadInput

struct BudgetAllocation {
  std::vector<int> choice;    // [items]: index into that item's options
  double budget = 0;          // the budget asked for, bits per channel
  double bitsPerChannel = 0;  // channel-weighted mean cost of the choice: <= budget (1e-12 relative)
  double loss = 0;            // summed loss of the choice
};

// Channel-weighted mean cost, sum_i channels_i bits_i / sum_i channels_i, of a choice.
double allocationBits(const std::vector<BudgetItem>& items, const std::vector<int>& choice);

// Throws Error(BadInput, "", "budget", ...) when an item has no option, a weight or cost is
// negative or not finite, or even the cheapest settings cost more than the budget (the message
// gives that minimum).
BudgetAllocation allocateBudget(const std::vector<BudgetItem>& items, double budgetBitsPerChannel,
                                BudgetMethod method = BudgetMethod::Exact);

// An allocation of RVQ depths to a cache's quantizers as exported with the codebooks (kvq allocate;
// the /allocation group of a codebook file, docs/codebook-format.md), with the basis its bits were
// counted on.
struct CacheAllocation {
  double budget = 0;           // asked, bits per channel
  double bitsPerChannel = 0;   // of the choice, everything counted: <= budget
  double loss = 0;             // summed loss of the choice
  std::string lossName;        // what the loss is
  std::string method;          // budgetMethodName
  int64_t contextTokens = 0;   // sequence length the exact tokens are shared over
  int64_t amortiseTokens = 0;  // cached tokens the codebook storage is shared over (0 = not counted)
  int sinks = 0, window = 0;   // exact tokens of each sequence: the first S, a sliding window of R
  std::vector<int> layers;     // [items]
  std::vector<Kind> kinds;     // [items]
  std::vector<int> depths;     // [items] RVQ stages used
  std::vector<double> bits;    // [items] bits per channel of each quantizer
  std::vector<double> losses;  // [items] measured loss at its depth
};

}  // namespace kvq
