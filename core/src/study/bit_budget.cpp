#include "kvq/study/bit_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "kvq/base/error.h"

namespace kvq {
namespace {

// The dynamic programme's grid has at most this many cost units for the whole budget: fine
// enough that rounding each quantizer's cost up by less than one unit wastes a negligible part
// of the budget, small enough that the choice table stays a few MB.
constexpr double kGridUnits = 65536.0;
// A budget is a decimal number of bits (2.9958...) whose product with the channel count is not
// exact in binary: costs may reach it up to this relative rounding, and never more.
constexpr double kRounding = 1e-12;

[[noreturn]] void badBudget(const std::string& problem) {
  throwBadInput("", "budget", problem);
}

std::string bitsText(double bits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", bits);
  return text;
}

double totalChannels(const std::vector<BudgetItem>& items) {
  double w = 0;
  for (const BudgetItem& item : items) w += item.channels;
  return w;
}

void validateItems(const std::vector<BudgetItem>& items, double budget) {
  if (!std::isfinite(budget) || budget < 0) badBudget("the budget must be a finite number of bits >= 0");
  if (items.empty()) badBudget("there is no quantizer to allocate bits to");
  for (const BudgetItem& item : items) {
    const std::string where = std::string("layer ") + std::to_string(item.layer) + " " + kindName(item.kind);
    if (!(item.channels > 0) || !std::isfinite(item.channels))
      badBudget(where + ": channel weight must be > 0");
    if (item.options.empty()) badBudget(where + ": no setting to choose from");
    if (item.options.size() > std::numeric_limits<uint16_t>::max()) badBudget(where + ": too many settings");
    for (const BudgetOption& o : item.options) {
      if (!std::isfinite(o.bitsPerChannel) || o.bitsPerChannel < 0 || !std::isfinite(o.loss)) {
        badBudget(where + ": a setting's cost or loss is negative or not finite");
      }
    }
  }
}

// Index of the cheapest option (lowest loss among equally cheap ones).
int cheapest(const BudgetItem& item) {
  int best = 0;
  for (int j = 1; j < static_cast<int>(item.options.size()); ++j) {
    const BudgetOption& o = item.options[static_cast<size_t>(j)];
    const BudgetOption& b = item.options[static_cast<size_t>(best)];
    if (o.bitsPerChannel < b.bitsPerChannel || (o.bitsPerChannel == b.bitsPerChannel && o.loss < b.loss))
      best = j;
  }
  return best;
}

std::vector<int> greedyChoice(const std::vector<BudgetItem>& items, double capacity) {
  std::vector<int> choice(items.size());
  double spent = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    choice[i] = cheapest(items[i]);
    spent += items[i].channels * items[i].options[static_cast<size_t>(choice[i])].bitsPerChannel;
  }
  for (;;) {
    // The upgrade (to any setting with a lower loss) with the largest loss decrease per
    // bit-channel among those that fit; a setting that is no dearer wins outright.
    double bestRatio = -1;
    size_t bestItem = 0;
    int bestOption = -1;
    for (size_t i = 0; i < items.size(); ++i) {
      const BudgetOption& cur = items[i].options[static_cast<size_t>(choice[i])];
      for (size_t j = 0; j < items[i].options.size(); ++j) {
        const BudgetOption& o = items[i].options[j];
        if (!(o.loss < cur.loss)) continue;
        const double extra = items[i].channels * (o.bitsPerChannel - cur.bitsPerChannel);
        if (spent + extra > capacity) continue;
        const double ratio =
            extra <= 0 ? std::numeric_limits<double>::infinity() : (cur.loss - o.loss) / extra;
        if (ratio > bestRatio) {
          bestRatio = ratio;
          bestItem = i;
          bestOption = static_cast<int>(j);
        }
      }
    }
    if (bestOption < 0) return choice;
    const BudgetItem& item = items[bestItem];
    spent += item.channels * (item.options[static_cast<size_t>(bestOption)].bitsPerChannel -
                              item.options[static_cast<size_t>(choice[bestItem])].bitsPerChannel);
    choice[bestItem] = bestOption;
  }
}

// Multiple-choice knapsack by dynamic programming over integer cost units: best[c] is the
// smallest summed loss of the items so far whose rounded-up costs total at most c units.
std::vector<int> exactChoice(const std::vector<BudgetItem>& items, double capacity) {
  // A power-of-two unit keeps costs that are dyadic (K log2 C / g, 16/D) exact on the grid.
  const double unit = std::exp2(std::floor(std::log2(std::max(capacity, 1e-300) / kGridUnits)));
  const auto cap = static_cast<int64_t>(std::floor(capacity / unit));
  const auto width = static_cast<size_t>(cap + 1);
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> best(width, 0.0);
  std::vector<double> next(width);
  std::vector<uint16_t> pick(items.size() * width);
  for (size_t i = 0; i < items.size(); ++i) {
    const BudgetItem& item = items[i];
    std::fill(next.begin(), next.end(), kInf);
    for (size_t j = 0; j < item.options.size(); ++j) {
      const double units = std::ceil(item.channels * item.options[j].bitsPerChannel / unit);
      if (units > static_cast<double>(cap)) continue;
      const auto u = static_cast<size_t>(units);
      const double loss = item.options[j].loss;
      for (size_t c = u; c < width; ++c) {
        const double v = best[c - u] + loss;
        if (v < next[c]) {
          next[c] = v;
          pick[i * width + c] = static_cast<uint16_t>(j);
        }
      }
    }
    best.swap(next);
  }
  std::vector<int> choice(items.size());
  size_t c = width - 1;
  for (size_t i = items.size(); i-- > 0;) {
    const int j = pick[i * width + c];
    choice[i] = j;
    c -= static_cast<size_t>(
        std::ceil(items[i].channels * items[i].options[static_cast<size_t>(j)].bitsPerChannel / unit));
  }
  return choice;
}

}  // namespace

const char* budgetMethodName(BudgetMethod method) {
  return method == BudgetMethod::Greedy ? "greedy" : "exact";
}

BudgetMethod parseBudgetMethod(const std::string& name) {
  if (name == "exact") return BudgetMethod::Exact;
  if (name == "greedy") return BudgetMethod::Greedy;
  throwBadInput("", "method", "unknown method '" + name + "' (expected exact or greedy)");
}

double allocationBits(const std::vector<BudgetItem>& items, const std::vector<int>& choice) {
  double spent = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    spent += items[i].channels * items[i].options[static_cast<size_t>(choice[i])].bitsPerChannel;
  }
  return spent / totalChannels(items);
}

BudgetAllocation allocateBudget(const std::vector<BudgetItem>& items, double budgetBitsPerChannel,
                                BudgetMethod method) {
  validateItems(items, budgetBitsPerChannel);
  std::vector<int> floorChoice(items.size());
  for (size_t i = 0; i < items.size(); ++i) floorChoice[i] = cheapest(items[i]);
  const double minimum = allocationBits(items, floorChoice);
  if (minimum > budgetBitsPerChannel) {
    badBudget("even the cheapest settings need " + bitsText(minimum) + " bits per channel, more than the " +
              bitsText(budgetBitsPerChannel) + " asked for");
  }
  const double capacity = budgetBitsPerChannel * totalChannels(items) * (1 + kRounding);
  BudgetAllocation out;
  out.budget = budgetBitsPerChannel;
  out.choice = method == BudgetMethod::Greedy ? greedyChoice(items, capacity) : exactChoice(items, capacity);
  out.bitsPerChannel = allocationBits(items, out.choice);
  // Rounding in the sums above could, in principle, land past the budget: fall back to the
  // cheapest settings rather than ever reporting more than was asked for.
  if (out.bitsPerChannel > budgetBitsPerChannel * (1 + kRounding)) {
    out.choice = floorChoice;
    out.bitsPerChannel = minimum;
  }
  for (size_t i = 0; i < items.size(); ++i)
    out.loss += items[i].options[static_cast<size_t>(out.choice[i])].loss;
  return out;
}

}  // namespace kvq
