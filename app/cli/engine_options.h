// Options shared by the engine commands (train, eval, sweep, encode): the dump
// argument, every RvqConfig setting, layer/kind selection, baselines and backend.
// Settings start from --preset; options given explicitly override it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvq/rvq/backend.h"
#include "kvq/study/quantize_study.h"
#include "kvq/study/sweep.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace kvq::cli {

struct EngineOptions {
  std::string dump;
  // RvqConfig settings (applied over the preset only when given).
  std::string preset = "paper";
  int codebookSize = 0, depth = 0, groupSize = 0, beam = 0, emaSteps = 0, kmeansIterations = 0;
  std::string keyGrouping, valueGrouping;
  uint64_t seed = 0;
  bool perHead = false;
  int64_t trainSample = 0, batchSize = 0;
  int lloydIterations = 0;
  double emaDecay = 0, emaEpsilon = 0, deadThreshold = 0;
  std::string init;
  double heldOut = 0;
  std::vector<CLI::Option*> configOptions;  // to tell which were given
  // Selection and baselines.
  std::string layers, kinds = "keys,values", baselineBits = "2,3,4";
  int baselineTokenGroup = 32, baselineChannelGroup = 32;
  int64_t chunkTokens = 1024;
  // Compute.
  std::string backend = "auto";
  int threads = 0;
  // Reports.
  std::string reportJson, reportCsv;
};

// DUMP positional argument (defaults to the bundled sample).
void addDumpArgument(CLI::App* cmd, EngineOptions& o);
// --preset, --codebook-size, --depth, --group-size, --key-grouping, --value-grouping,
// --seed, --per-head, --beam, --train-sample, --ema-steps, --kmeans-iterations,
// --batch-size, --held-out.
void addConfigOptions(CLI::App* cmd, EngineOptions& o);
// --held-out only (eval: the rest comes from the codebook file).
void addHeldOutOption(CLI::App* cmd, EngineOptions& o);
// --layers, --kinds, --baseline-bits, --baseline-token-group, --baseline-channel-group, --chunk-tokens.
void addSelectionOptions(CLI::App* cmd, EngineOptions& o);
// --backend, --threads.
void addComputeOptions(CLI::App* cmd, EngineOptions& o);
// --report FILE.json, --csv FILE.csv.
void addReportOptions(CLI::App* cmd, EngineOptions& o);

// The preset with the explicitly given options applied over it (not yet validated).
RvqConfig buildConfig(const EngineOptions& o);
// Applies only the explicitly given config options over `base` (eval's --held-out).
RvqConfig overrideConfig(RvqConfig base, const EngineOptions& o);
StudyOptions buildStudyOptions(const EngineOptions& o, const RvqConfig& config);

// "0,4,8", "1-8", "1-4,8": ascending, duplicates removed. Throws BadInput naming option.
std::vector<int> parseIntList(const std::string& text, const std::string& option);
std::vector<Kind> parseKinds(const std::string& text);

// The DUMP argument, or the bundled sample; BadInput when neither exists.
std::string resolveDump(const std::string& dump, const std::string& command);
std::unique_ptr<Backend> makeEngineBackend(const EngineOptions& o);

// Readable tables on stdout.
void printStudyTable(const StudyResult& study);
void printSweepTable(const SweepResult& sweep);
// Writes --report / --csv when given; prints what was written.
void writeStudyReports(const EngineOptions& o, const StudyResult& study);

// Before any long work: throws BadInput(path, option, ...) (exit 2) when `path`'s
// directory is missing or not writable, or `path` is a directory. "" (option not
// given) passes. checkReportOutputs checks --report and --csv.
void checkOutputPath(const std::string& option, const std::string& path);
void checkReportOutputs(const EngineOptions& o);

}  // namespace kvq::cli
