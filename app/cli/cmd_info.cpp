// kvq info FILE [--json]: shape, conventions and per-layer statistics of a dump.
// The header prints as soon as the (isolated) validator has read it, then each
// layer's row as its statistics complete, in layer order.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "default_sample.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_json.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/isolate/open_file.h"
#include "open_options.h"
#include "progress_bar.h"

namespace kvq::cli {
namespace {

struct InfoOptions {
  std::string file;
  bool json = false;
  OpenArgs open;
};

std::string joinChannels(const std::vector<int>& channels, size_t count) {
  std::string out;
  for (size_t i = 0; i < channels.size() && i < count; ++i) {
    if (i > 0) out += ",";
    out += std::to_string(channels[i]);
  }
  return out;
}

void printHeader(const DumpInfo& info) {
  std::printf("file        %s\n", info.path.c_str());
  std::printf("model       %s\n", info.model.c_str());
  if (!info.source.empty()) std::printf("source      %s\n", info.source.c_str());
  std::printf("layers      %zu of %d present:", info.layers.size(), info.numLayers);
  for (int layer : info.layers) std::printf(" %d", layer);
  std::printf("\n");
  std::printf("kv heads    %d", info.numKvHeads);
  if (info.numQHeads > 0) std::printf("  (query heads %d)", info.numQHeads);
  std::printf("\nhead_dim    %d\ntokens      %lld", info.headDim, static_cast<long long>(info.tokens));
  if (!info.sequenceStarts.empty()) std::printf("  in %zu sequences", info.sequenceStarts.size());
  std::printf("\ndtype       %s\n", dtypeName(info.dtype));
  std::printf("key RoPE    %s", info.keyRope.c_str());
  if (info.ropeTheta) std::printf("  (theta %g", *info.ropeTheta);
  if (info.ropeTheta && info.ropeDim) std::printf(", dim %d", *info.ropeDim);
  if (info.ropeTheta) std::printf(")");
  std::printf("\nRoPE layout %s", info.ropeLayout.c_str());
  if (!info.ropeInvFreq.empty()) {
    std::printf("  (/rope_inv_freq: %zu frequencies, %.6g ... %.6g)", info.ropeInvFreq.size(),
                info.ropeInvFreq.front(), info.ropeInvFreq.back());
  }
  if (info.attentionScale) std::printf("\nattn scale  %g (not 1/sqrt(head_dim))", *info.attentionScale);
  std::printf("\nqueries     %s", info.queryTokens == 0 ? "no" : info.hasQueries ? "yes" : "in some layers");
  if (!info.queryPositions.empty()) {
    std::printf("  (%lld of %lld tokens, /query_positions)", static_cast<long long>(info.queryTokens),
                static_cast<long long>(info.tokens));
  }
  std::printf("\n\n");
  std::printf("%5s %-6s %9s %9s %9s %9s  %s\n", "layer", "kind", "mean|x|", "std", "max|x|", "kurtosis",
              "outlier channels (largest mean|x| first)");
  std::fflush(stdout);
}

void printRows(const LayerStats& ls) {
  for (int k = 0; k < 2; ++k) {
    const KindStats& ks = k == 0 ? ls.keys : ls.values;
    std::printf("%5d %-6s %9.4f %9.4f %9.3f %9.2f  %s\n", ls.layer, k == 0 ? "keys" : "values",
                ks.all.meanAbs, ks.all.std, ks.all.maxAbs, ks.all.excessKurtosis,
                joinChannels(ks.outlierChannels, 6).c_str());
  }
  std::fflush(stdout);
}

// Prints rows in layer order while layers complete in any order.
class RowPrinter {
 public:
  explicit RowPrinter(ProgressBar& bar) : m_bar(bar) {}
  void header(const DumpInfo& info) {
    m_layers = info.layers;
    m_bar.finish();
    printHeader(info);
  }
  void layer(const LayerStats& ls) {
    m_waiting.emplace(ls.layer, ls);
    while (m_next < m_layers.size() && m_waiting.count(m_layers[m_next]) > 0) {
      m_bar.finish();
      printRows(m_waiting.at(m_layers[m_next]));
      m_waiting.erase(m_layers[m_next++]);
    }
  }

 private:
  ProgressBar& m_bar;
  std::vector<int> m_layers;
  std::map<int, LayerStats> m_waiting;
  size_t m_next = 0;
};

void runInfo(const InfoOptions& options) {
  ProgressBar bar;
  RowPrinter printer(bar);
  OpenListener listener;
  if (!options.json) {
    listener.onHeader = [&](const DumpInfo& info) { printer.header(info); };
    listener.onLayer = [&](const LayerStats& ls) { printer.layer(ls); };
  }
  const OpenedDump opened = openDump(options.file, openPolicy(options.open), listener, bar.control());
  bar.finish();
  if (options.json) std::cout << dumpInfoToJson(opened.reader->info(), opened.stats).dump(2) << "\n";
}

}  // namespace

void registerInfo(CLI::App& root) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* cmd = root.add_subcommand(
      "info", "Validate a dump and print its shape, conventions and per-layer statistics");
  cmd->add_option("file", options->file, "KV dump (HDF5, format v1); default: the bundled sample");
  cmd->add_flag("--json", options->json, "Print the same as a JSON document");
  addOpenOptions(cmd, options->open, true);
  cmd->callback([options]() {
    if (options->file.empty()) options->file = kvq::app::defaultSample();
    if (options->file.empty())
      throwBadInput("", "info", "no FILE given and the bundled sample is not present");
    runInfo(*options);
  });
}

}  // namespace kvq::cli
