#include "engine_options.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <set>

#include "commands.h"
#include "default_sample.h"
#include "kvq/base/error.h"
#include "kvq/rvq/backend_registry.h"

namespace kvq::cli {
namespace {

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
  o.config.add(cmd, specsOf(rvqConfigTable()));
}

void addHeldOutOption(CLI::App* cmd, EngineOptions& o) {
  o.config.add(cmd, specsOf(rvqConfigTable()), {"held_out_fraction"});
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
  cmd->add_flag("--exact", o.gpuExact,
                "GPU: exact fp32 search only, no tensor-core candidates (the same codes, slower)");
}

void addTrainingOptions(CLI::App* cmd, EngineOptions& o) {
  addDumpArgument(cmd, o);
  addConfigOptions(cmd, o);
  addSelectionOptions(cmd, o);
  addComputeOptions(cmd, o);
}

void addReportOptions(CLI::App* cmd, EngineOptions& o) {
  cmd->add_option("--report", o.reportJson, "Write every metric as JSON to this file");
  cmd->add_option("--csv", o.reportCsv, "Write the metrics table as CSV to this file");
}

RvqConfig overrideConfig(RvqConfig c, const EngineOptions& o) {
  assignValues(rvqConfigTable(), o.config.given(specsOf(rvqConfigTable())), c);
  return c;
}

RvqConfig buildConfig(const EngineOptions& o) {
  const std::optional<FieldValue> preset = o.config.given("preset");
  return overrideConfig(presetConfig(preset ? std::get<std::string>(*preset) : "paper"), o);
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
    const Kind kind = parseKind(part, "kinds");  // queries: refused by the study, which names them
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
  }
  if (kinds.empty()) throwBadInput("", "kinds", "no kind given");
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
  BackendOptions options;
  options.cpuThreads = o.threads;
  options.gpuExact = o.gpuExact;
  options.gpuSlot = o.gpuSlot;
  auto backend = makeBackend(o.backend, options, &note);
  if (!note.empty()) std::fprintf(stderr, "kvq: %s\n", note.c_str());
  return backend;
}

}  // namespace kvq::cli
