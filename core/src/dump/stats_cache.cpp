#include "kvq/dump/stats_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/dump/dump_json.h"

namespace kvq {
namespace {

constexpr int kEntryVersion = 1;
constexpr uint64_t kEdgeBytes = 64 << 10;  // hashed at both ends (HDF5 metadata lives there)
constexpr uint64_t kSampleBytes = 4 << 10;
constexpr int kSamples = 32;
constexpr uintmax_t kMaxEntryBytes = uintmax_t{64} << 20;  // larger entries are not read

std::string hex128(const XXH128_hash_t& h) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return text;
}

std::string hashText(const std::string& text) {
  return hex128(XXH3_128bits(text.data(), text.size()));
}

// Hashes [offset, offset+length) of fd into state (short at end of file).
void hashRange(int fd, uint64_t offset, uint64_t length, XXH3_state_t* state, const std::string& path) {
  std::vector<char> buffer(static_cast<size_t>(length));
  size_t done = 0;
  while (done < buffer.size()) {
    const ssize_t n =
        ::pread(fd, buffer.data() + done, buffer.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwBadInput(path, "", std::string("cannot read the file (") + std::strerror(errno) + ")");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  XXH3_128bits_update(state, buffer.data(), done);
}

nlohmann::json keyJson(const StatsCacheKey& key) {
  return {{"size", key.size}, {"mtime_ns", key.mtimeNs}, {"content_hash", key.contentHash}};
}

// The checksum covers everything else in the entry, serialised canonically
// (nlohmann sorts keys; doubles print in their shortest round-trip form).
std::string checksumOf(const nlohmann::json& entryWithoutChecksum) {
  return hashText(entryWithoutChecksum.dump());
}

std::optional<CachedStats> parseEntry(const std::string& text, const StatsCacheKey& key) {
  nlohmann::json entry = nlohmann::json::parse(text);  // throws on malformed text
  if (!entry.is_object() || entry.value("kvq_stats_cache", 0) != kEntryVersion) return std::nullopt;
  if (!entry.contains("checksum") || !entry.at("checksum").is_string()) return std::nullopt;
  const std::string checksum = entry.at("checksum").get<std::string>();
  entry.erase("checksum");
  if (checksum != checksumOf(entry) || entry.value("key", nlohmann::json()) != keyJson(key))
    return std::nullopt;
  CachedStats cached;
  cached.info = dumpHeaderFromJson(entry.at("header"), "statistics cache entry");
  const nlohmann::json& layers = entry.at("layers");
  if (!layers.is_array() || layers.size() != cached.info.layers.size()) return std::nullopt;
  for (size_t i = 0; i < layers.size(); ++i) {
    cached.stats.push_back(layerStatsFromJson(layers[i], cached.info, "statistics cache entry"));
    if (cached.stats.back().layer != cached.info.layers[i]) return std::nullopt;
  }
  return cached;
}

// Keeps the newest kMaxEntries entries.
void prune(const std::string& directory) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> entries;
  for (const auto& e : fs::directory_iterator(directory, ec)) {
    if (e.path().extension() == ".json") entries.emplace_back(e.last_write_time(ec), e.path());
  }
  if (entries.size() <= static_cast<size_t>(StatsCache::kMaxEntries)) return;
  std::sort(entries.begin(), entries.end());
  for (size_t i = 0; i + StatsCache::kMaxEntries < entries.size(); ++i) fs::remove(entries[i].second, ec);
}

}  // namespace

StatsCacheKey statsCacheKey(const std::string& path, const FileIdentity& identity) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throwBadInput(path, "", std::string("cannot open the file (") + std::strerror(errno) + ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  requireSameFile(path, identity, identifyOpenFile(fd, path));
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> owner(state, &XXH3_freeState);
  XXH3_128bits_reset(state);
  const uint64_t size = identity.size;
  if (size <= 2 * kEdgeBytes + kSamples * kSampleBytes) {
    hashRange(fd, 0, size, state, path);
  } else {
    hashRange(fd, 0, kEdgeBytes, state, path);
    for (int i = 1; i <= kSamples; ++i) {
      hashRange(fd, size / (kSamples + 1) * static_cast<uint64_t>(i), kSampleBytes, state, path);
    }
    hashRange(fd, size - kEdgeBytes, kEdgeBytes, state, path);
  }
  return StatsCacheKey{size, identity.mtimeNs, hex128(XXH3_128bits_digest(state))};
}

StatsCache::StatsCache(std::string directory) : m_directory(std::move(directory)) {}

std::string StatsCache::defaultDirectory() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/kvq-studio/stats";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.cache/kvq-studio/stats";
  return {};
}

std::string StatsCache::entryPath(const StatsCacheKey& key) const {
  return m_directory + "/" + hashText(keyJson(key).dump()) + ".json";
}

std::optional<CachedStats> StatsCache::load(const StatsCacheKey& key) const {
  if (m_directory.empty()) return std::nullopt;
  const std::string path = entryPath(key);
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  if (ec || bytes > kMaxEntryBytes) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return parseEntry(text.str(), key);
  } catch (const std::exception&) {
    return std::nullopt;  // malformed JSON or a record that does not fit: ignored
  }
}

bool StatsCache::store(const StatsCacheKey& key, const DumpInfo& info,
                       const std::vector<LayerStats>& stats) const {
  if (m_directory.empty()) return false;
  try {
    std::error_code ec;
    std::filesystem::create_directories(m_directory, ec);
    ::chmod(m_directory.c_str(), 0700);
    nlohmann::json entry;
    entry["kvq_stats_cache"] = kEntryVersion;
    entry["key"] = keyJson(key);
    entry["header"] = dumpHeaderToJson(info);
    nlohmann::json layers = nlohmann::json::array();
    for (const LayerStats& ls : stats) layers.push_back(layerStatsToJson(ls));
    entry["layers"] = std::move(layers);
    entry["checksum"] = checksumOf(entry);
    atomicWriteFile(entryPath(key), entry.dump());
    prune(m_directory);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace kvq
