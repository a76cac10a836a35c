#include "engine_options.h"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "default_sample.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/study/report.h"

namespace kvq::cli {
namespace {

bool given(const EngineOptions& o, const std::string& name) {
  for (const CLI::Option* opt : o.configOptions) {
    if (opt->check_name(name)) return opt->count() > 0;
  }
  return false;
}

std::vector<std::string> splitCommas(const std::string& text) {
  std::vector<std::string> parts;
  std::string part;
  for (char c : text + ",") {
    if (c == ',') {
      if (!part.empty()) parts.push_back(part);
      part.clear();
    } else if (c != ' ') {
      part.push_back(c);
    }
  }
  return parts;
}

int parseInt(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const int v = std::stoi(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throwBadInput("", option, "'" + text + "' is not an integer");
}

}  // namespace

void addDumpArgument(CLI::App* cmd, EngineOptions& o) {
  cmd->add_option("dump", o.dump, "KV dump (HDF5, format v1); default: the bundled sample");
}

void addConfigOptions(CLI::App* cmd, EngineOptions& o) {
  auto& v = o.configOptions;
  v.push_back(cmd->add_option("--preset", o.preset, "Settings to start from: paper, fast or quality")
                  ->check(CLI::IsMember({"paper", "fast", "quality"})));
  v.push_back(cmd->add_option("--codebook-size", o.codebookSize, "C: entries per codebook (paper: 2048)"));
  v.push_back(cmd->add_option("--depth", o.depth, "K: residual stages (paper: 8)"));
  v.push_back(cmd->add_option("--group-size", o.groupSize,
                              "g: channels per group; must divide head_dim (paper: 32)"));
  v.push_back(cmd->add_option("--key-grouping", o.keyGrouping,
                              "Channel grouping of keys: strided (paper) or contiguous")
                  ->check(CLI::IsMember({"strided", "contiguous", "non-contiguous"})));
  v.push_back(cmd->add_option("--value-grouping", o.valueGrouping,
                              "Grouping of values: contiguous (paper) or strided")
                  ->check(CLI::IsMember({"strided", "contiguous", "non-contiguous"})));
  v.push_back(cmd->add_option("--seed", o.seed, "Random seed of sampling and training"));
  v.push_back(
      cmd->add_flag("--per-head", o.perHead, "One quantizer per head instead of one per layer and kind"));
  v.push_back(cmd->add_option("--beam", o.beam, "Encoding beam width (1 = greedy, the paper)"));
  v.push_back(cmd->add_option("--train-sample", o.trainSample,
                              "At most this many group vectors train each quantizer"));
  v.push_back(cmd->add_option("--ema-steps", o.emaSteps, "EMA mini-batch steps per stage"));
  v.push_back(
      cmd->add_option("--kmeans-iterations", o.kmeansIterations, "k-means iterations of each stage's init"));
  v.push_back(cmd->add_option("--batch-size", o.batchSize, "Vectors per EMA mini-batch"));
  v.push_back(
      cmd->add_option("--init", o.init, "k-means initialisation: points (paper), kmeans++ or progressive")
          ->check(CLI::IsMember({"points", "kmeans++", "progressive"})));
  v.push_back(cmd->add_option("--ema-decay", o.emaDecay, "EMA decay lambda (paper: 0.99)"));
  v.push_back(cmd->add_option("--ema-epsilon", o.emaEpsilon, "Laplace smoothing epsilon (paper: 1e-5)"));
  v.push_back(cmd->add_option("--dead-threshold", o.deadThreshold,
                              "Restart entries whose EMA count falls below this fraction of the mean count "
                              "(0 = off, the paper)"));
  v.push_back(cmd->add_option("--lloyd-iterations", o.lloydIterations,
                              "Lloyd refinement iterations after EMA (0 = off, the paper)"));
  addHeldOutOption(cmd, o);
}

void addHeldOutOption(CLI::App* cmd, EngineOptions& o) {
  o.configOptions.push_back(
      cmd->add_option("--held-out", o.heldOut,
                      "Fraction of each sequence's tail kept out of training and evaluated (0 = no split)"));
}

void addSelectionOptions(CLI::App* cmd, EngineOptions& o) {
  cmd->add_option("--layers", o.layers, "Layers, e.g. 0,4,8 or 0-5 (default: every layer in the dump)");
  cmd->add_option("--kinds", o.kinds, "keys, values or keys,values")->capture_default_str();
  cmd->add_option("--baseline-bits", o.baselineBits, "KIVI baseline bit widths (\"\" = none)")
      ->capture_default_str();
  cmd->add_option("--baseline-token-group", o.baselineTokenGroup, "KIVI keys: tokens per group n_t")
      ->capture_default_str();
  cmd->add_option("--baseline-channel-group", o.baselineChannelGroup, "KIVI values: channels per group n_c")
      ->capture_default_str();
  cmd->add_option("--chunk-tokens", o.chunkTokens, "Tokens per evaluation block (bounds memory)")
      ->capture_default_str();
}

void addComputeOptions(CLI::App* cmd, EngineOptions& o) {
  cmd->add_option("--backend", o.backend, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "CPU threads (0 = all)")->check(CLI::Range(0, 4096));
}

void addReportOptions(CLI::App* cmd, EngineOptions& o) {
  cmd->add_option("--report", o.reportJson, "Write every metric as JSON to this file");
  cmd->add_option("--csv", o.reportCsv, "Write the metrics table as CSV to this file");
}

RvqConfig overrideConfig(RvqConfig c, const EngineOptions& o) {
  if (given(o, "--codebook-size")) c.codebookSize = o.codebookSize;
  if (given(o, "--depth")) c.depth = o.depth;
  if (given(o, "--group-size")) c.groupSize = o.groupSize;
  if (given(o, "--key-grouping")) c.keyGrouping = parseGrouping(o.keyGrouping);
  if (given(o, "--value-grouping")) c.valueGrouping = parseGrouping(o.valueGrouping);
  if (given(o, "--seed")) c.seed = o.seed;
  if (given(o, "--per-head")) c.perHead = o.perHead;
  if (given(o, "--beam")) c.beamWidth = o.beam;
  if (given(o, "--train-sample")) c.trainSample = o.trainSample;
  if (given(o, "--ema-steps")) c.emaSteps = o.emaSteps;
  if (given(o, "--kmeans-iterations")) c.kmeansIterations = o.kmeansIterations;
  if (given(o, "--batch-size")) c.batchSize = o.batchSize;
  if (given(o, "--init")) {
    c.init = o.init == "kmeans++"      ? KMeansInit::PlusPlus
             : o.init == "progressive" ? KMeansInit::Progressive
                                       : KMeansInit::RandomPoints;
  }
  if (given(o, "--ema-decay")) c.emaDecay = o.emaDecay;
  if (given(o, "--ema-epsilon")) c.emaEpsilon = o.emaEpsilon;
  if (given(o, "--dead-threshold")) c.deadThreshold = o.deadThreshold;
  if (given(o, "--lloyd-iterations")) c.lloydIterations = o.lloydIterations;
  if (given(o, "--held-out")) c.heldOutFraction = o.heldOut;
  return c;
}

RvqConfig buildConfig(const EngineOptions& o) {
  return overrideConfig(presetConfig(o.preset), o);
}

StudyOptions buildStudyOptions(const EngineOptions& o, const RvqConfig& config) {
  StudyOptions s;
  s.config = config;
  if (!o.layers.empty()) s.layers = parseIntList(o.layers, "--layers");
  s.kinds = parseKinds(o.kinds);
  s.baselineBits =
      o.baselineBits.empty() ? std::vector<int>{} : parseIntList(o.baselineBits, "--baseline-bits");
  s.baselineTokenGroup = o.baselineTokenGroup;
  s.baselineChannelGroup = o.baselineChannelGroup;
  s.chunkTokens = o.chunkTokens;
  return s;
}

std::vector<int> parseIntList(const std::string& text, const std::string& option) {
  std::set<int> values;
  for (const std::string& part : splitCommas(text)) {
    const size_t dash = part.find('-', 1);
    if (dash == std::string::npos) {
      values.insert(parseInt(part, option));
      continue;
    }
    const int lo = parseInt(part.substr(0, dash), option), hi = parseInt(part.substr(dash + 1), option);
    if (hi < lo || hi - lo > 100000) throwBadInput("", option, "bad range '" + part + "'");
    for (int v = lo; v <= hi; ++v) values.insert(v);
  }
  if (values.empty()) throwBadInput("", option, "empty list");
  return {values.begin(), values.end()};
}

std::vector<Kind> parseKinds(const std::string& text) {
  std::vector<Kind> kinds;
  for (const std::string& part : splitCommas(text)) {
    Kind kind = Kind::Keys;
    if (part == "keys") {
      kind = Kind::Keys;
    } else if (part == "values") {
      kind = Kind::Values;
    } else {
      throwBadInput("", "--kinds", "unknown kind '" + part + "' (keys, values)");
    }
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  if (kinds.empty()) throwBadInput("", "--kinds", "no kind given");
  return kinds;
}

std::string resolveDump(const std::string& dump, const std::string& command) {
  if (!dump.empty()) return dump;
  std::string sample = kvq::app::defaultSample();
  if (sample.empty()) throwBadInput("", command, "no DUMP given and the bundled sample is not present");
  return sample;
}

std::unique_ptr<Backend> makeEngineBackend(const EngineOptions& o) {
  std::string note;
  auto backend = makeBackend(o.backend, o.threads, &note);
  if (!note.empty()) std::fprintf(stderr, "kvq: %s\n", note.c_str());
  return backend;
}

void printStudyTable(const StudyResult& s) {
  const RvqConfig& c = s.config;
  std::printf("dump     %s (%s), %lld tokens: %lld train, %lld held out (%.0f%% tail of each %s)\n",
              s.dumpPath.c_str(), s.model.c_str(), static_cast<long long>(s.tokens),
              static_cast<long long>(s.split.trainTokens), static_cast<long long>(s.split.heldOutTokens),
              s.split.heldOutFraction * 100.0, s.split.perSequence ? "sequence" : "dump");
  std::printf("config   preset %s, C=%d K=%d g=%d, keys %s, values %s%s, beam %d, seed %llu\n",
              c.preset.c_str(), c.codebookSize, c.depth, c.groupSize, groupingName(c.keyGrouping),
              groupingName(c.valueGrouping), c.perHead ? ", per head" : "", c.beamWidth,
              static_cast<unsigned long long>(c.seed));
  std::printf("backend  %s, %.1f s\n\n", s.backendName.c_str(), s.totalSeconds);
  std::printf("%5s %-6s %-10s %6s %6s %9s %7s %7s %6s  %s\n", "layer", "kind", "grouping", "bits", "ratio",
              "rel.err", "SNR dB", "cosine", "used", "rel.err by depth 1..K");
  for (const LayerKindResult& job : s.jobs) {
    const ErrorSums& e = job.error();
    double used = 0;
    int stages = 0;
    for (const QuantizerResult& q : job.quantizers) {
      for (const StageUsage& u : q.usage) used += u.fractionUsed, ++stages;
    }
    std::string curve;
    for (const ErrorSums& d : job.byDepth) {
      char buffer[16];
      std::snprintf(buffer, sizeof buffer, " %.4f", d.relativeError());
      curve += buffer;
    }
    std::printf("%5d %-6s %-10s %6.3f %6.2f %9.5f %7.2f %7.4f %5.0f%% %s\n", job.layer, kindName(job.kind),
                groupingName(job.grouping), job.bitsPerChannel, job.compressionRatio, e.relativeError(),
                e.snrDb(), e.meanCosine(), stages > 0 ? 100.0 * used / stages : 0.0, curve.c_str());
    for (const BaselineResult& b : job.baselines) {
      std::printf("%5s %-6s %-10s %6.3f %6.2f %9.5f %7.2f %7.4f\n", "", "",
                  ("kivi-" + std::to_string(b.bits)).c_str(), b.bitsPerChannel, b.compressionRatio,
                  b.error.relativeError(), b.error.snrDb(), b.error.meanCosine());
    }
  }
  const ErrorSums all = s.total(c.depth);
  std::printf("\nall layers and kinds: relative error %.5f, SNR %.2f dB, cosine %.4f over %lld vectors\n",
              all.relativeError(), all.snrDb(), all.meanCosine(), static_cast<long long>(all.vectors));
}

void printSweepTable(const SweepResult& sweep) {
  std::printf("%-6s %-6s %6s %5s %5s %7s %7s %9s %7s %7s\n", "method", "kind", "C", "K", "b", "bits", "ratio",
              "rel.err", "SNR dB", "cosine");
  for (const SweepPoint& p : sweep.points) {
    if (p.layer >= 0) continue;  // the table shows the sums over layers; the files have every layer
    std::printf("%-6s %-6s %6s %5s %5s %7.3f %7.2f %9.5f %7.2f %7.4f\n", p.method.c_str(), kindName(p.kind),
                p.codebookSize > 0 ? std::to_string(p.codebookSize).c_str() : "-",
                p.depth > 0 ? std::to_string(p.depth).c_str() : "-",
                p.bits > 0 ? std::to_string(p.bits).c_str() : "-", p.bitsPerChannel, p.compressionRatio,
                p.error.relativeError(), p.error.snrDb(), p.error.meanCosine());
  }
}

void writeStudyReports(const EngineOptions& o, const StudyResult& study) {
  if (!o.reportJson.empty()) {
    atomicWriteFile(o.reportJson, studyToJson(study).dump(2) + "\n");
    std::printf("wrote %s\n", o.reportJson.c_str());
  }
  if (!o.reportCsv.empty()) {
    atomicWriteFile(o.reportCsv, studyToCsv(study));
    std::printf("wrote %s\n", o.reportCsv.c_str());
  }
}

void checkOutputPath(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throwBadInput(path, option, "is a directory, expected a file name");
  const fs::path parent = fs::path(path).parent_path();
  const std::string dir = parent.empty() ? std::string(".") : parent.string();
  if (!fs::is_directory(dir, ec)) throwBadInput(path, option, "directory '" + dir + "' does not exist");
  // The temporary file is created next to the target, so the directory must be writable.
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throwBadInput(path, option, "directory '" + dir + "' is not writable");
  }
}

void checkReportOutputs(const EngineOptions& o) {
  checkOutputPath("--report", o.reportJson);
  checkOutputPath("--csv", o.reportCsv);
}

}  // namespace kvq::cli
