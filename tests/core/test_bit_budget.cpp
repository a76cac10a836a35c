// The bit-budget allocator: hand-worked choices, brute-force optimality, the budget never exceeded.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/study/bit_budget.h"

namespace kvq {
namespace {

BudgetItem item(int layer, Kind kind, double channels, std::vector<std::pair<double, double>> costLoss) {
  BudgetItem it;
  it.layer = layer;
  it.kind = kind;
  it.channels = channels;
  int depth = 0;
  for (auto [bits, loss] : costLoss) it.options.push_back({++depth, 256, bits, loss});
  return it;
}

// Smallest summed loss over every combination whose weighted mean cost is within the budget.
double bruteForce(const std::vector<BudgetItem>& items, double budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> c(items.size(), 0);
  for (;;) {
    if (allocationBits(items, c) <= budget) {
      double loss = 0;
      for (size_t i = 0; i < items.size(); ++i) loss += items[i].options[static_cast<size_t>(c[i])].loss;
      best = std::min(best, loss);
    }
    size_t i = 0;
    while (i < items.size() && ++c[i] == static_cast<int>(items[i].options.size())) c[i++] = 0;
    if (i == items.size()) return best;
  }
}

TEST(BitBudget, HandWorkedTwoQuantizers) {
  // Keys lose little per bit, values a lot: at a 2-bit mean, values get 3 bits and keys 1.
  // Options (bits: loss): keys 1: 1.0, 2: 0.8, 3: 0.7; values 1: 4.0, 2: 2.0, 3: 1.0.
  // Pairs within 2 bits on average: (1,3) 1.0+1.0 = 2.0; (2,2) 0.8+2.0 = 2.8; (3,1) 0.7+4.0.
  const std::vector<BudgetItem> items{item(0, Kind::Keys, 192, {{1, 1.0}, {2, 0.8}, {3, 0.7}}),
                                      item(0, Kind::Values, 192, {{1, 4.0}, {2, 2.0}, {3, 1.0}})};
  for (BudgetMethod m : {BudgetMethod::Exact, BudgetMethod::Greedy}) {
    const BudgetAllocation a = allocateBudget(items, 2.0, m);
    EXPECT_EQ(a.choice, (std::vector<int>{0, 2})) << budgetMethodName(m);
    EXPECT_DOUBLE_EQ(a.bitsPerChannel, 2.0);
    EXPECT_DOUBLE_EQ(a.loss, 2.0);
  }
}

TEST(BitBudget, ChannelWeightsCount) {
  // Item 0 covers three times the channels of item 1: one bit more there costs 0.75 bits on
  // average, one bit more on item 1 costs 0.25. Budget 1.25: only item 1 can be upgraded.
  const std::vector<BudgetItem> items{item(0, Kind::Keys, 3, {{1, 5.0}, {2, 0.0}}),
                                      item(1, Kind::Keys, 1, {{1, 1.0}, {2, 0.5}})};
  const BudgetAllocation a = allocateBudget(items, 1.25);
  EXPECT_EQ(a.choice, (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(a.bitsPerChannel, 1.25);
}

TEST(BitBudget, MeetsAReachableBudgetExactly) {
  // 60 quantizers, depth 1..8 at 0.25 bits per stage + 0.25 for the scale, losses halving with
  // depth: every budget on the 0.25/60-bit lattice is reachable and must be spent exactly.
  std::vector<BudgetItem> items;
  for (int l = 0; l < 30; ++l) {
    for (Kind k : {Kind::Keys, Kind::Values}) {
      std::vector<std::pair<double, double>> opts;
      for (int d = 1; d <= 8; ++d)
        opts.push_back({0.25 + 0.25 * d, (1.0 + l + (k == Kind::Values)) * std::exp2(-d)});
      items.push_back(item(l, k, 192, opts));
    }
  }
  for (double budget : {0.5, 0.75 + 0.25 / 60, 1.0, 1.5, 2.0, 2.25 - 0.25 / 60, 2.25}) {
    for (BudgetMethod m : {BudgetMethod::Exact, BudgetMethod::Greedy}) {
      const BudgetAllocation a = allocateBudget(items, budget, m);
      EXPECT_LE(a.bitsPerChannel, budget * (1 + 1e-12));
      EXPECT_NEAR(a.bitsPerChannel, budget, 1e-12) << budget << " " << budgetMethodName(m);
    }
  }
  // Above the dearest settings: every quantizer at its best, the rest unspent.
  EXPECT_DOUBLE_EQ(allocateBudget(items, 5.0).bitsPerChannel, 2.25);
}

TEST(BitBudget, ExactIsOptimalAndNeverOverBudgetOnRandomMenus) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BudgetItem> items;
    const int n = 2 + trial % 3;
    for (int i = 0; i < n; ++i) {
      std::vector<std::pair<double, double>> opts;
      const int m = 1 + static_cast<int>(u(rng) * 4);
      // Costs on a 1/64 lattice (exact on the grid), losses arbitrary (not convex, not sorted).
      for (int j = 0; j < m; ++j) opts.push_back({std::round(u(rng) * 4 * 64) / 64, u(rng)});
      items.push_back(item(i, Kind::Values, 1 + std::round(u(rng) * 3), opts));
    }
    std::vector<int> cheap(items.size(), 0);
    double minimum = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      double c = 1e9;
      for (const auto& o : items[i].options) c = std::min(c, o.bitsPerChannel);
      minimum += c * items[i].channels;
    }
    double w = 0;
    for (const auto& it : items) w += it.channels;
    const double budget = minimum / w + u(rng) * 2;
    const double optimum = bruteForce(items, budget);
    const BudgetAllocation exact = allocateBudget(items, budget, BudgetMethod::Exact);
    const BudgetAllocation greedy = allocateBudget(items, budget, BudgetMethod::Greedy);
    EXPECT_LE(exact.bitsPerChannel, budget) << trial;
    EXPECT_LE(greedy.bitsPerChannel, budget) << trial;
    EXPECT_NEAR(exact.loss, optimum, 1e-12) << trial;
    EXPECT_GE(greedy.loss, optimum - 1e-12) << trial;
  }
}

TEST(BitBudget, RefusesWhatCannotBeMet) {
  const std::vector<BudgetItem> items{item(0, Kind::Keys, 192, {{2, 1.0}, {3, 0.5}})};
  try {
    allocateBudget(items, 1.5);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.where(), "budget");
    EXPECT_NE(e.problem().find("2.0000"), std::string::npos) << e.problem();
  }
  EXPECT_THROW(allocateBudget({}, 3.0), Error);
  EXPECT_THROW(allocateBudget({item(0, Kind::Keys, 192, {})}, 3.0), Error);
  EXPECT_THROW(allocateBudget(items, std::nan("")), Error);
  EXPECT_THROW(parseBudgetMethod("optimal"), Error);
}

}  // namespace
}  // namespace kvq
