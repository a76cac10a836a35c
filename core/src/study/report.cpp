#include "kvq/study/report.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/json_number.h"
#include "kvq/io/codebook_file.h"
#include "kvq/study/attention_report.h"

namespace kvq {
namespace {

using nlohmann::json;

json usageToJson(const StageUsage& u, bool histogram) {
  json j = {{"fraction_used", u.fractionUsed},
            {"perplexity", u.perplexity},
            {"dead_entries", u.deadEntries},
            {"total", u.total}};
  if (histogram) j["histogram"] = u.histogram;
  return j;
}

json splitToJson(const TokenSplit& split) {
  auto ranges = [](const std::vector<TokenRange>& rs) {
    json a = json::array();
    for (const TokenRange& r : rs) a.push_back({r.begin, r.end});
    return a;
  };
  return {{"held_out_fraction", split.heldOutFraction},
          {"per_sequence", split.perSequence},
          {"rule", split.heldOutFraction > 0 ? "tail of each sequence held out"
                                             : "no split: train and evaluate on all"},
          {"train_tokens", split.trainTokens},
          {"held_out_tokens", split.heldOutTokens},
          {"train", ranges(split.train)},
          {"held_out", ranges(split.heldOut)}};
}

json baselineToJson(const BaselineResult& b) {
  return {{"method", "kivi"},
          {"bits", b.bits},
          {"group_size", b.groupSize},
          {"bits_per_channel", b.bitsPerChannel},
          {"compression_ratio", b.compressionRatio},
          {"error", errorToJson(b.error)}};
}

json jobToJson(const LayerKindResult& job, bool histograms) {
  json j;
  j["layer"] = job.layer;
  j["kind"] = kindName(job.kind);
  j["grouping"] = groupingName(job.grouping);
  j["channel_order"] = job.channelOrder;
  if (!job.channelWeights.empty()) j["channel_weights"] = job.channelWeights;
  if (!job.channelMeans.empty()) j["channel_means"] = job.channelMeans;
  j["bits_per_channel"] = job.bitsPerChannel;
  j["compression_ratio"] = job.compressionRatio;
  j["codebook_bits"] = job.codebookBits;
  j["amortised_bits_per_channel"] = finiteOrNull(job.amortisedBitsPerChannel);
  j["amortised_compression_ratio"] = finiteOrNull(job.amortisedCompressionRatio);
  j["held_out_vectors"] = job.evalVectors;
  j["error"] = errorToJson(job.error());
  j["by_depth"] = json::array();
  for (const ErrorSums& e : job.byDepth) j["by_depth"].push_back(errorToJson(e));
  j["per_head"] = json::array();
  for (const auto& head : job.perHeadByDepth) {
    json depths = json::array();
    for (const ErrorSums& e : head) depths.push_back(errorToJson(e));
    j["per_head"].push_back(depths);
  }
  j["quantizers"] = json::array();
  for (const QuantizerResult& q : job.quantizers) {
    json qj = {{"head", q.head}, {"train_vectors", q.trainVectors}, {"train_seconds", q.train.seconds}};
    qj["stage_error_after_init"] = q.train.stageErrorAfterInit;
    qj["stage_error_after_ema"] = q.train.stageErrorAfterEma;
    qj["reseeded"] = q.train.reseeded;
    qj["usage"] = json::array();
    for (const StageUsage& u : q.usage) qj["usage"].push_back(usageToJson(u, histograms));
    j["quantizers"].push_back(qj);
  }
  j["baselines"] = json::array();
  for (const BaselineResult& b : job.baselines) j["baselines"].push_back(baselineToJson(b));
  j["timings"] = {{"train_seconds", job.trainSeconds}, {"eval_seconds", job.evalSeconds}};
  return j;
}

std::string fmt(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";  // -inf: SNR of a zero signal with error
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", v);
  return buffer;
}

struct CsvRow {
  std::string layer, kind, head, method;
  int codebookSize = 0, depth = 0, bits = 0, groupSize = 0;
  double bitsPerChannel = 0, ratio = 0;
  ErrorSums error;
};

constexpr const char* kCsvHeader =
    "layer,kind,head,method,codebook_size,depth,bits,group_size,bits_per_channel,compression_ratio,"
    "relative_error,snr_db,mean_cosine,vectors\n";

void appendRow(std::string& out, const CsvRow& r) {
  auto opt = [](int v) { return v > 0 ? std::to_string(v) : std::string(); };
  out += r.layer + "," + r.kind + "," + r.head + "," + r.method + "," + opt(r.codebookSize) + "," +
         opt(r.depth) + "," + opt(r.bits) + "," + opt(r.groupSize) + "," + fmt(r.bitsPerChannel) + "," +
         fmt(r.ratio) + "," + fmt(r.error.relativeError()) + "," + fmt(r.error.snrDb()) + "," +
         fmt(r.error.meanCosine()) + "," + std::to_string(r.error.vectors) + "\n";
}

}  // namespace

json errorToJson(const ErrorSums& e) {
  return {{"relative_error", finiteOrNull(e.relativeError())},
          {"snr_db", finiteOrNull(e.snrDb())},
          {"mean_cosine", e.meanCosine()},
          {"vectors", e.vectors},
          {"error_energy", e.errorEnergy},
          {"signal_energy", e.signalEnergy}};
}

json studyToJson(const StudyResult& s, bool includeHistograms) {
  json j;
  j["kvq_report"] = "study";
  j["version"] = 1;
  j["dump"] = {{"path", s.dumpPath},
               {"model", s.model},
               {"head_dim", s.headDim},
               {"num_kv_heads", s.numKvHeads},
               {"tokens", s.tokens}};
  j["config"] = json::parse(configToJson(s.config));
  j["codebooks_file"] = s.codebooksPath;
  j["split"] = splitToJson(s.split);
  j["baseline_options"] = {{"bits", s.baselineBits},
                           {"token_group", s.baselineTokenGroup},
                           {"channel_group", s.baselineChannelGroup}};
  j["backend"] = s.backendName;
  j["timings"] = {{"total_seconds", s.totalSeconds}};
  json totals = json::object();
  for (Kind kind : {Kind::Keys, Kind::Values}) {
    json byDepth = json::array();
    for (int k = 1; k <= s.config.depth; ++k) byDepth.push_back(errorToJson(s.total(k, &kind)));
    if (s.total(s.config.depth, &kind).vectors > 0) totals[kindName(kind)] = byDepth;
  }
  totals["all"] = errorToJson(s.total(s.config.depth));
  j["totals"] = totals;
  j["jobs"] = json::array();
  for (const LayerKindResult& job : s.jobs) j["jobs"].push_back(jobToJson(job, includeHistograms));
  if (!s.attention.layers.empty()) j["attention"] = attentionToJson(s.attention);
  return j;
}

std::string studyCsvHeader() {
  return kCsvHeader;
}

std::string studyToCsv(const StudyResult& s) {
  std::string out = kCsvHeader;
  const RvqConfig& c = s.config;
  for (const LayerKindResult& job : s.jobs) {
    const std::string layer = std::to_string(job.layer), kind = kindName(job.kind);
    for (int k = 1; k <= static_cast<int>(job.byDepth.size()); ++k) {
      const double bits = rvqBitsPerChannel(c.codebookSize, k, c.groupSize, s.headDim);
      appendRow(out, {layer, kind, "all", "rvq", c.codebookSize, k, 0, c.groupSize, bits, 16.0 / bits,
                      job.byDepth[k - 1]});
      for (size_t h = 0; h < job.perHeadByDepth.size(); ++h) {
        appendRow(out, {layer, kind, std::to_string(h), "rvq", c.codebookSize, k, 0, c.groupSize, bits,
                        16.0 / bits, job.perHeadByDepth[h][k - 1]});
      }
    }
    for (const BaselineResult& b : job.baselines) {
      appendRow(out, {layer, kind, "all", "kivi", 0, 0, b.bits, b.groupSize, b.bitsPerChannel,
                      b.compressionRatio, b.error});
    }
  }
  for (Kind kind : {Kind::Keys, Kind::Values}) {
    for (int k = 1; k <= c.depth; ++k) {
      const ErrorSums total = s.total(k, &kind);
      if (total.vectors == 0) continue;
      const double bits = rvqBitsPerChannel(c.codebookSize, k, c.groupSize, s.headDim);
      appendRow(out, {"all", kindName(kind), "all", "rvq", c.codebookSize, k, 0, c.groupSize, bits,
                      16.0 / bits, total});
    }
  }
  return s.attention.layers.empty() ? out : withAttentionCsv(out, s.attention, c.codebookSize);
}

json sweepToJson(const SweepResult& sweep) {
  json j;
  j["kvq_report"] = "sweep";
  j["version"] = 1;
  j["codebook_sizes"] = sweep.codebookSizes;
  j["depths"] = sweep.depths;
  j["points"] = json::array();
  for (const SweepPoint& p : sweep.points) {
    json pj = {{"method", p.method},
               {"layer", p.layer < 0 ? json("all") : json(p.layer)},
               {"kind", kindName(p.kind)},
               {"bits_per_channel", p.bitsPerChannel},
               {"compression_ratio", p.compressionRatio},
               {"group_size", p.groupSize},
               {"error", errorToJson(p.error)}};
    if (p.method == "rvq") {
      pj["codebook_size"] = p.codebookSize;
      pj["depth"] = p.depth;
    } else {
      pj["bits"] = p.bits;
    }
    j["points"].push_back(pj);
  }
  j["studies"] = json::array();
  for (const StudyResult& s : sweep.studies) j["studies"].push_back(studyToJson(s, false));
  return j;
}

std::string sweepToCsv(const SweepResult& sweep) {
  std::string out = kCsvHeader;
  for (const SweepPoint& p : sweep.points) {
    appendRow(out,
              {p.layer < 0 ? "all" : std::to_string(p.layer), kindName(p.kind), "all", p.method,
               p.codebookSize, p.depth, p.bits, p.groupSize, p.bitsPerChannel, p.compressionRatio, p.error});
  }
  return out;
}

}  // namespace kvq
