// The open path of untrusted files (kvq/isolate/open_file.h): cache lookup,
// isolated validation, then the in-process reader on the very file that passed.
#include "kvq/isolate/open_file.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "isolate/validator_run.h"
#include "kvq/base/error.h"
#include "kvq/base/file_identity.h"
#include "kvq/dump/stats_cache.h"
#include "kvq/isolate/validator_path.h"

namespace kvq {
namespace {

// A positive number from the environment, or fallback.
double envNumber(const char* name, double fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  return end != text && *end == '\0' && value > 0 ? value : fallback;
}

std::string validatorOf(const OpenPolicy& policy) {
  if (!policy.validator.empty()) return policy.validator;
  std::string found = locateValidator();
  if (found.empty()) {
    std::string looked;
    for (const std::string& c : validatorCandidates()) looked += (looked.empty() ? "" : ", ") + c;
    throwInternal("validator", "cannot find the kvq binary that validates files in isolation (looked at: " +
                                   looked + "); set KVQ_VALIDATOR, or open trusted files without isolation");
  }
  return found;
}

// Validator processes for a file of `bytes`: one per core up to 4, but one per
// 64 MiB at most — starting a process costs more than scanning a small dump.
// (The layer count is not known before a child has read the header.)
int workersFor(const OpenPolicy& policy, uint64_t bytes) {
  if (policy.workers > 0) return policy.workers;
  const auto cores = static_cast<uint64_t>(std::max(1u, std::thread::hardware_concurrency()));
  const uint64_t bySize = std::max<uint64_t>(1, bytes / (uint64_t{64} << 20));
  return static_cast<int>(std::min<uint64_t>({cores, bySize, 4}));
}

StatsCache cacheOf(const OpenPolicy& policy) {
  if (!policy.useCache) return StatsCache("");
  return StatsCache(policy.cacheDirectory.empty() ? StatsCache::defaultDirectory() : policy.cacheDirectory);
}

// The cached entry when it describes the dump that was just validated.
bool cacheFits(const std::optional<CachedStats>& cached, const DumpInfo& info) {
  if (!cached) return false;
  DumpInfo stored = cached->info;
  stored.path = info.path;  // the key is the content: the file may have been renamed
  return stored == info;
}

isolate::RunRequest runRequest(const std::string& path, const FileIdentity& identity,
                               const OpenPolicy& policy, UntrustedKind kind, bool statistics) {
  isolate::RunRequest request;
  request.path = path;
  request.identity = identity;
  request.kind = kind;
  request.statistics = statistics;
  request.validator = validatorOf(policy);
  request.limits = policy.limits;
  return request;
}

// Validation (and, unless the cache answered, the scan) in child processes.
// Returns the header; fills stats when scanned.
DumpInfo validateIsolated(const std::string& path, const FileIdentity& identity, const OpenPolicy& policy,
                          bool statistics, const OpenListener& listener, const TaskControl* control,
                          std::vector<LayerStats>& stats) {
  isolate::RunRequest request = runRequest(path, identity, policy, UntrustedKind::Dump, statistics);
  request.workers = workersFor(policy, identity.size);
  isolate::RunResult result = isolate::runValidators(request, listener, control);
  stats = std::move(result.stats);
  return result.info;
}

}  // namespace

OpenPolicy OpenPolicy::fromEnvironment() {
  OpenPolicy policy;
  policy.limits.memoryBytes =
      static_cast<uint64_t>(
          envNumber("KVQ_ISOLATION_MEMORY_MB", static_cast<double>(policy.limits.memoryBytes >> 20)))
      << 20;
  policy.limits.stallSeconds = envNumber("KVQ_ISOLATION_STALL_S", policy.limits.stallSeconds);
  policy.limits.cpuSeconds = envNumber("KVQ_ISOLATION_CPU_S", 0);
  policy.workers = static_cast<int>(envNumber("KVQ_OPEN_WORKERS", 0));
  return policy;
}

OpenedDump openDump(const std::string& path, const OpenPolicy& policy, const OpenListener& listener,
                    const TaskControl* control) {
  const FileIdentity identity = identifyFile(path);
  const StatsCache cache = cacheOf(policy);
  std::optional<StatsCacheKey> key;
  std::optional<CachedStats> cached;
  if (!cache.directory().empty()) {
    key = statsCacheKey(path, identity);
    cached = cache.load(*key);
  }
  OpenedDump opened;
  std::optional<DumpInfo> validated;
  bool headerSent = false;
  OpenListener once = listener;  // the header reaches the listener once, even if validation runs twice
  once.onHeader = [&](const DumpInfo& info) {
    if (!headerSent && listener.onHeader) listener.onHeader(info);
    headerSent = true;
  };
  if (policy.isolate) {
    validated = validateIsolated(path, identity, policy, !cached, once, control, opened.stats);
    if (cached && !cacheFits(cached, *validated)) {
      cached.reset();  // an entry that does not fit this dump: scan after all
      validated = validateIsolated(path, identity, policy, true, once, control, opened.stats);
    }
  }
  OpenOptions options;
  options.scanValues = false;  // done by the validators, or by scanLayers below
  options.expectedIdentity = identity;
  options.control = control;
  opened.reader = DumpReader::open(path, options);
  const DumpInfo& info = opened.reader->info();
  if (validated && !(*validated == info))
    throwInternal(path, "the validator and the reader disagree about this dump");
  once.onHeader(info);
  if (cacheFits(cached, info)) {
    opened.stats = cached->stats;
    opened.statsFromCache = true;
    if (listener.onLayer) {
      for (const LayerStats& ls : opened.stats) listener.onLayer(ls);
    }
  } else if (!policy.isolate) {
    scanLayers(
        *opened.reader, info.layers,
        [&](LayerStats&& ls) {
          if (listener.onLayer) listener.onLayer(ls);
          opened.stats.push_back(std::move(ls));
        },
        control);
  }
  if (key && !opened.statsFromCache) cache.store(*key, info, opened.stats);
  return opened;
}

DumpInfo validateDumpIsolated(const std::string& path, const FileIdentity& identity,
                              const std::vector<int>& layers, const OpenPolicy& policy,
                              const TaskControl* control) {
  isolate::RunRequest request = runRequest(path, identity, policy, UntrustedKind::Dump, !layers.empty());
  request.layers = layers;
  // One process: the ranks that call this already use the cores.
  request.workers = policy.workers > 0 ? std::min(policy.workers, static_cast<int>(layers.size())) : 1;
  return isolate::runValidators(request, {}, control).info;
}

CodebookFile openCodebookFile(const std::string& path, const OpenPolicy& policy) {
  if (!policy.isolate) return readCodebookFile(path);
  const FileIdentity identity = identifyFile(path);
  isolate::runValidators(runRequest(path, identity, policy, UntrustedKind::Codebooks, false), {}, nullptr);
  return readCodebookFile(path, &identity);
}

}  // namespace kvq
