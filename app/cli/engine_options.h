// Options shared by the engine commands (train, eval, sweep, encode): the dump
// argument, every RvqConfig setting (one flag per field of rvqConfigFields, through
// ConfigFlags), layer/kind selection, baselines and backend. Settings start from
// --preset; options given explicitly override it. Tables: tables.h; output files:
// output_paths.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config_flags.h"
#include "kvq/rvq/backend.h"
#include "kvq/study/quantize_study.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvq::cli {

struct EngineOptions {
  std::string dump;
  ConfigFlags config;  // RvqConfig settings, applied over the preset only when given
  // Selection and baselines.
  std::string layers, kinds = "keys,values", baselineBits = "2,3,4";
  int baselineTokenGroup = 32, baselineChannelGroup = 32;
  int64_t chunkTokens = 1024;
  // Compute.
  std::string backend = "auto";
  int threads = 0;
  bool gpuExact = false;
  int gpuSlot = 0;  // under MPI the node-local rank: which GPU (gpuDeviceForSlot)
  // Reports.
  std::string reportJson, reportCsv;
};

// DUMP positional argument (defaults to the bundled sample).
void addDumpArgument(CLI::App* cmd, EngineOptions& o);
// One flag per RvqConfig field (flagForField: --preset, --codebook-size, --depth, ...,
// --beam, --held-out, --seed), with the field's doc and range as --help.
void addConfigOptions(CLI::App* cmd, EngineOptions& o);
// --held-out only (eval: the rest comes from the codebook file).
void addHeldOutOption(CLI::App* cmd, EngineOptions& o);
// --layers, --kinds, --baseline-bits, --baseline-token-group, --baseline-channel-group, --chunk-tokens.
void addSelectionOptions(CLI::App* cmd, EngineOptions& o);
// --backend, --threads, --exact.
void addComputeOptions(CLI::App* cmd, EngineOptions& o);
// What the training commands (train, sweep) take: DUMP, every config flag, the selection
// and the compute options, in that order.
void addTrainingOptions(CLI::App* cmd, EngineOptions& o);
// --report FILE.json, --csv FILE.csv.
void addReportOptions(CLI::App* cmd, EngineOptions& o);

// The preset with the explicitly given options applied over it (not yet validated).
RvqConfig buildConfig(const EngineOptions& o);
// Applies only the explicitly given config options over `base` (eval's --held-out).
RvqConfig overrideConfig(RvqConfig base, const EngineOptions& o);
StudyOptions buildStudyOptions(const EngineOptions& o, const RvqConfig& config);

// "0,4,8", "1-8", "1-4,8": ascending, duplicates removed. Throws BadInput naming option.
std::vector<int> parseIntList(const std::string& text, const std::string& option);
std::vector<Kind> parseKinds(const std::string& text);  // "keys,values"; BadInput naming "kinds"

// The DUMP argument, or the bundled sample; BadInput when neither exists.
std::string resolveDump(const std::string& dump, const std::string& command);
std::unique_ptr<Backend> makeEngineBackend(const EngineOptions& o);

}  // namespace kvq::cli
