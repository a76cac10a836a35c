// StatsCache — a per-user cache of dump statistics, so reopening a dump shows them
// at once instead of reading gigabytes again (docs/architecture.md, "Opening").
//
// Entries live in $XDG_CACHE_HOME/kvq-studio/stats (default ~/.cache/kvq-studio/
// stats), never next to the user's files. An entry is keyed by the file's identity:
// its size, its modification time and a hash of its first and last 64 KiB and of
// 32 blocks of 4 KiB sampled across it (dumps are mostly chunk data, so a rewritten
// dump differs in the samples). A changed file gets a new key and is scanned again.
// Entries are written atomically and carry a checksum; an entry that is corrupt,
// truncated, of another version or that does not fit the dump is ignored and later
// replaced — never trusted blindly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvq/base/file_identity.h"
#include "kvq/dump/dump.h"
#include "kvq/dump/dump_stats.h"

namespace kvq {

struct StatsCacheKey {
  uint64_t size = 0;
  int64_t mtimeNs = 0;
  std::string contentHash;  // 32 hex digits (XXH3-128 of the sampled bytes)
};

// Reads the sampled bytes of path (plain reads, no HDF5) and checks they belong to
// the file of `identity`. Throws Error(BadInput) naming path when it cannot be read
// or is not that file any more.
StatsCacheKey statsCacheKey(const std::string& path, const FileIdentity& identity);

// What an entry holds: the dump's header as it was validated and its statistics.
struct CachedStats {
  DumpInfo info;  // path: the path the entry was stored under (the key is the content)
  std::vector<LayerStats> stats;
};

class StatsCache {
 public:
  // Maximum number of entries kept; the least recently stored go first.
  static constexpr int kMaxEntries = 256;

  // directory: where entries live ("" = no cache: load finds nothing, store does nothing).
  explicit StatsCache(std::string directory);
  // $XDG_CACHE_HOME/kvq-studio/stats, else $HOME/.cache/kvq-studio/stats, else "".
  static std::string defaultDirectory();
  const std::string& directory() const { return m_directory; }

  // The entry for key when it exists and passes every check (version, key, checksum,
  // a complete header and statistics for every layer of it); nullopt otherwise.
  std::optional<CachedStats> load(const StatsCacheKey& key) const;
  // Stores atomically (in a directory of mode 0700). Best effort: returns false,
  // never throws, when the cache cannot be written.
  bool store(const StatsCacheKey& key, const DumpInfo& info, const std::vector<LayerStats>& stats) const;
  // The entry file of key (for tests and docs).
  std::string entryPath(const StatsCacheKey& key) const;

 private:
  std::string m_directory;
};

}  // namespace kvq
