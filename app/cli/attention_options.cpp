#include "attention_options.h"

#include <CLI/CLI.hpp>

#include <cstdio>

#include "engine_options.h"

namespace kvq::cli {

void addAttentionOptions(CLI::App* cmd, AttentionCliOptions& o, bool withFlag) {
  if (withFlag) {
    cmd->add_flag(
        "--attention", o.enabled,
        "Also measure attention (output error, KL, logit error, top-k recall) on the dump's queries");
  }
  cmd->add_option("--attention-queries", o.queries,
                  "Query tokens sampled per layer from the held-out tails, stratified (0 = all)")
      ->capture_default_str();
  cmd->add_option("--attention-top-k", o.topK, "k of the mass recall (1..256)")->capture_default_str();
  cmd->add_option("--attention-window", o.window, "Recent keys: the 'recent' region and KIVI's exact window")
      ->capture_default_str();
  cmd->add_option("--attention-depths", o.depths, "RVQ depths to measure, e.g. 4,6,8 or 1-8 (default: K)");
  cmd->add_flag("--no-kivi-window", o.noKiviWindow, "Skip KIVI with its exact window of recent tokens");
}

AttentionOptions buildAttentionOptions(const AttentionCliOptions& o, bool enabled) {
  AttentionOptions a;
  a.enabled = enabled;
  a.queriesPerLayer = o.queries;
  a.topK = o.topK;
  a.recentWindow = o.window;
  a.kiviWindow = !o.noKiviWindow;
  if (!o.depths.empty()) a.rvqDepths = parseIntList(o.depths, "--attention-depths");
  validateAttentionOptions(a);
  return a;
}

namespace {

std::string methodLabel(const AttentionMethodResult& m) {
  if (m.method == "rvq") return "rvq K=" + std::to_string(m.depth);
  if (m.method == "kivi") return "kivi-" + std::to_string(m.bits);
  if (m.method == "kivi-window") return "kivi-" + std::to_string(m.bits) + "+win";
  return m.method;
}

void printRow(const std::string& layer, const AttentionMethodResult& m) {
  const AttentionSums& s = m.total;
  constexpr KeyRegion kSink = KeyRegion::Sink, kRecent = KeyRegion::Recent, kRest = KeyRegion::Rest;
  std::printf("%5s %-13s %6.3f %9.5f %9.5f %9.5f %6.3f   %8.5f %8.5f %8.5f   %5.3f %5.3f %5.3f\n",
              layer.c_str(), methodLabel(m).c_str(), m.bitsPerChannel, s.outputRelativeError(), s.meanKl(),
              s.logitRelativeError(), s.massRecall(), s.regionMeanKl(kSink), s.regionMeanKl(kRecent),
              s.regionMeanKl(kRest), s.regionMassShare(kSink), s.regionMassShare(kRecent),
              s.regionMassShare(kRest));
}

}  // namespace

void printAttentionTable(const AttentionResult& r) {
  if (r.layers.empty()) return;
  const LayerAttentionResult& first = r.layers.front();
  const int heads = first.methods.empty() ? 0 : static_cast<int>(first.methods.front().perHead.size());
  std::printf(
      "\nattention: %lld query tokens x %d heads per layer (of %lld held-out), top-%d recall, recent %d "
      "keys\n",
      static_cast<long long>(first.queryTokens), heads, static_cast<long long>(first.candidates),
      r.options.topK, r.options.recentWindow);
  std::printf("           RoPE %s, softmax scale %.6g\n", r.rope.c_str(), r.scale);
  std::printf("%5s %-13s %6s %9s %9s %9s %6s   %-26s   %s\n", "layer", "method", "bits", "out.err", "KL nats",
              "logit.err", "recall", "KL: sink   recent   rest", "mass: sink recent rest");
  for (const LayerAttentionResult& layer : r.layers) {
    for (const AttentionMethodResult& m : layer.methods) printRow(std::to_string(layer.layer), m);
  }
  if (r.layers.size() > 1) {
    for (const AttentionMethodResult& m : first.methods) {
      printRow("all", r.total(m.method, m.method == "rvq" ? m.depth : m.bits));
    }
  }
}

}  // namespace kvq::cli
