#include "kvq/model/cache_allocation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "kvq/base/error.h"
#include "kvq/model/perplexity.h"

namespace kvq {

namespace {

std::vector<int> offeredDepths(const AllocationOptions& options, const CodebookFile& codebooks) {
  if (!options.depths.empty()) return options.depths;
  std::vector<int> all;
  for (int k = 1; k <= codebooks.config.depth; ++k) all.push_back(k);
  return all;
}

// The quantized layers: options.layers, else those of the file with keys and values.
std::vector<int> allocationLayers(const AllocationOptions& options, const CodebookFile& codebooks,
                                  int numLayers) {
  PplOptions p;
  p.layers = options.layers;
  p.codebooks = &codebooks;
  return quantizedLayers(p, numLayers);
}

std::string labelOf(int layer, Kind kind, int depth) {
  char text[64];  // (GCC 12 warns falsely about a chain of std::string + here)
  std::snprintf(text, sizeof text, "L%d-%s-%d", layer, kindName(kind), depth);
  return text;
}

// The variants of one layer: its keys then its values at every offered depth, the rest exact.
std::vector<CacheVariantSpec> layerVariants(int layer, int numLayers, const std::vector<int>& depths,
                                            const AllocationOptions& options) {
  std::vector<CacheVariantSpec> variants;
  for (int kindIndex = 0; kindIndex < 2; ++kindIndex) {
    for (int depth : depths) {
      CacheVariantSpec s = rvqVariant(depth, options.sinks, options.window);
      s.layerDepths.assign(static_cast<size_t>(numLayers), {0, 0});
      s.layerDepths[static_cast<size_t>(layer)][static_cast<size_t>(kindIndex)] = depth;
      s.name = labelOf(layer, kindIndex == 0 ? Kind::Keys : Kind::Values, depth);
      variants.push_back(std::move(s));
    }
  }
  return variants;
}

}  // namespace

void validateAllocationOptions(const AllocationOptions& options, const CodebookFile& codebooks) {
  for (int k : options.depths) {
    if (k < 1 || k > codebooks.config.depth) {
      throwBadInput("", "depths",
                    "depth " + std::to_string(k) + " outside 1.." + std::to_string(codebooks.config.depth) +
                        " (the stages of the codebook file)");
    }
  }
  if (options.sinks < 0) throwBadInput("", "sinks", "must be >= 0");
  if (options.window < 0) throwBadInput("", "rvq_window", "must be >= 0");
  if (options.basis.tokens < 1) throwBadInput("", "context", "must be >= 1 token");
  if (options.basis.amortiseTokens < 0) throwBadInput("", "amortise", "must be >= 0 tokens");
  if (options.calibrationTokens < 0 || options.calibrationTokens == 1)
    throwBadInput("", "calibration_tokens", "must be 0 (all) or at least 2");
}

void priceQuantizerOptions(std::vector<BudgetItem>& items, const CodebookFile& codebooks,
                           const AllocationOptions& options) {
  for (BudgetItem& item : items) {
    item.channels = static_cast<double>(codebooks.numKvHeads) * codebooks.headDim;
    for (BudgetOption& o : item.options)
      o.bitsPerChannel = rvqQuantizerBits(codebooks, o.depth, options.sinks, options.window, options.basis);
  }
}

std::vector<BudgetItem> measureQuantizerLosses(const DecoderModel& model, const DumpReader& dump,
                                               const CodebookFile& codebooks, const std::string& codebookPath,
                                               const AllocationOptions& options, const TaskControl* control) {
  validateAllocationOptions(options, codebooks);
  const int numLayers = model.config.numLayers;
  const std::vector<int> layers = allocationLayers(options, codebooks, numLayers);
  const std::vector<int> depths = offeredDepths(options, codebooks);
  std::vector<BudgetItem> items;
  for (size_t i = 0; i < layers.size(); ++i) {
    const int layer = layers[i];
    TaskControl sub;  // this layer's share of the progress
    if (control != nullptr) {
      sub.cancel = control->cancel;
      sub.onProgress = [&, i](double f, const std::string& stage) {
        control->report((static_cast<double>(i) + f) / static_cast<double>(layers.size()),
                        "layer " + std::to_string(layer) + ": " + stage);
      };
    }
    PplOptions p;
    p.variants = layerVariants(layer, numLayers, depths, options);
    p.layers = {layer};
    p.codebooks = &codebooks;
    p.codebookPath = codebookPath;
    p.backend = options.backend;
    p.threads = options.threads;
    p.maxTokens = options.calibrationTokens;
    p.checkDump = false;
    const PplReport report = evaluatePerplexity(model, dump, p, control != nullptr ? &sub : nullptr);
    for (int kindIndex = 0; kindIndex < 2; ++kindIndex) {
      BudgetItem item;
      item.layer = layer;
      item.kind = kindIndex == 0 ? Kind::Keys : Kind::Values;
      for (size_t d = 0; d < depths.size(); ++d) {
        const VariantReport& v = report.variants[static_cast<size_t>(kindIndex) * depths.size() + d];
        item.options.push_back({depths[d], codebooks.config.codebookSize, 0.0, v.overall.meanKl()});
      }
      items.push_back(std::move(item));
    }
  }
  priceQuantizerOptions(items, codebooks, options);
  return items;
}

CacheAllocation allocateCache(const std::vector<BudgetItem>& items, double budget, BudgetMethod method,
                              const AllocationOptions& options) {
  const BudgetAllocation a = allocateBudget(items, budget, method);
  CacheAllocation out;
  out.budget = budget;
  out.bitsPerChannel = a.bitsPerChannel;
  out.loss = a.loss;
  out.lossName = kAllocationLossName;
  out.method = budgetMethodName(method);
  out.contextTokens = options.basis.tokens;
  out.amortiseTokens = options.basis.amortiseTokens;
  out.sinks = options.sinks;
  out.window = options.window;
  for (size_t i = 0; i < items.size(); ++i) {
    const BudgetOption& o = items[i].options[static_cast<size_t>(a.choice[i])];
    out.layers.push_back(items[i].layer);
    out.kinds.push_back(items[i].kind);
    out.depths.push_back(o.depth);
    out.bits.push_back(o.bitsPerChannel);
    out.losses.push_back(o.loss);
  }
  return out;
}

CacheVariantSpec allocationVariant(const CacheAllocation& allocation, int numLayers) {
  CacheVariantSpec s = rvqVariant(0, allocation.sinks, allocation.window);
  s.layerDepths.assign(static_cast<size_t>(numLayers), {0, 0});
  int deepest = 0;
  for (size_t i = 0; i < allocation.layers.size(); ++i) {
    const int layer = allocation.layers[i];
    if (layer < 0 || layer >= numLayers) {
      throwBadInput(
          "", "/allocation/layer",
          "layer " + std::to_string(layer) + " outside the model's 0.." + std::to_string(numLayers - 1));
    }
    s.layerDepths[static_cast<size_t>(layer)][allocation.kinds[i] == Kind::Keys ? 0 : 1] =
        allocation.depths[i];
    deepest = std::max(deepest, allocation.depths[i]);
  }
  s.depth = deepest;
  char name[48];
  std::snprintf(name, sizeof name, "alloc-%.2fb", allocation.budget);
  s.name = name;
  return s;
}

std::string lossTableCsv(const std::vector<BudgetItem>& items) {
  std::ostringstream out;
  out.precision(17);  // doubles read back exactly
  out << "layer,kind,depth,bits_per_channel,loss\n";
  for (const BudgetItem& item : items) {
    for (const BudgetOption& o : item.options) {
      out << item.layer << ',' << kindName(item.kind) << ',' << o.depth << ',' << o.bitsPerChannel << ','
          << o.loss << '\n';
    }
  }
  return out.str();
}

std::vector<BudgetItem> parseLossTableCsv(const std::string& text, const std::string& path) {
  std::istringstream in(text);
  std::string line;
  std::vector<BudgetItem> items;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    if (lineNo == 1 || line.empty()) continue;  // the header
    std::istringstream row(line);
    std::string layer, kind, depth, bits, loss;
    const bool ok = std::getline(row, layer, ',') && std::getline(row, kind, ',') &&
                    std::getline(row, depth, ',') && std::getline(row, bits, ',') && std::getline(row, loss);
    BudgetOption o;
    int l = 0;
    Kind k = Kind::Keys;
    try {
      if (!ok || (kind != "keys" && kind != "values")) throw std::invalid_argument("row");
      l = std::stoi(layer);
      k = kind == "keys" ? Kind::Keys : Kind::Values;
      o.depth = std::stoi(depth);
      o.loss = std::stod(loss);
    } catch (const std::exception&) {
      throwBadInput(path, "line " + std::to_string(lineNo),
                    "expected layer,kind,depth,bits_per_channel,loss with kind keys or values");
    }
    if (items.empty() || items.back().layer != l || items.back().kind != k) items.push_back({l, k, 1, {}});
    items.back().options.push_back(o);
  }
  if (items.empty()) throwBadInput(path, "", "the loss table has no rows");
  return items;
}

}  // namespace kvq
