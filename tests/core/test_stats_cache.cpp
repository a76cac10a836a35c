// The per-user statistics cache: a hit returns exactly what was stored; the key
// follows the file (size, mtime, content); a corrupt, tampered, truncated or
// foreign entry is ignored and replaced, never trusted; --no-cache writes nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <utime.h>
#include <xxhash.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kvq/base/error.h"
#include "kvq/dump/dump_json.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/dump/stats_cache.h"
#include "kvq/isolate/open_file.h"
#include "synth_dump.h"
#include "test_util.h"

namespace kvq {
namespace {

std::string synthDump(const std::filesystem::path& dir, const std::string& name, uint64_t seed) {
  return test::writeSynthDumpOf((dir / name).string(), 3, 2, 8, 64, seed);
}

OpenPolicy cachedPolicy(const std::filesystem::path& dir, bool isolate) {
  OpenPolicy policy;
  policy.isolate = isolate;
  policy.validator = KVQ_BIN;
  policy.cacheDirectory = (dir / "cache").string();
  return policy;
}

// An entry re-sealed with a valid checksum (as the cache computes it): what a
// semantically wrong but intact entry looks like.
std::string reseal(nlohmann::json entry) {
  entry.erase("checksum");
  const std::string text = entry.dump();
  const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
  char hex[33];
  std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  entry["checksum"] = hex;
  return entry.dump();
}

std::string readAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class StatsCacheTest : public ::testing::TestWithParam<bool> {};  // isolated or in-process

TEST_P(StatsCacheTest, HitChangedFileAndCorruptEntries) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, "dump.h5", 3);
  const OpenPolicy policy = cachedPolicy(dir, GetParam());
  const std::vector<LayerStats> reference = computeDumpStats(*DumpReader::open(path));

  const OpenedDump first = openDump(path, policy);
  EXPECT_FALSE(first.statsFromCache);
  const StatsCache cache(policy.cacheDirectory);
  const StatsCacheKey key = statsCacheKey(path, identifyFile(path));
  const std::string entry = cache.entryPath(key);
  ASSERT_TRUE(std::filesystem::exists(entry));
  EXPECT_EQ((std::filesystem::status(policy.cacheDirectory).permissions() & std::filesystem::perms::all),
            std::filesystem::perms::owner_all);

  int layersSeen = 0;
  OpenListener listener;
  listener.onLayer = [&](const LayerStats&) { ++layersSeen; };
  const OpenedDump second = openDump(path, policy, listener);
  EXPECT_TRUE(second.statsFromCache);
  EXPECT_EQ(layersSeen, 3);  // a hit still reaches the listener, every layer
  ASSERT_EQ(second.stats.size(), reference.size());
  for (size_t l = 0; l < reference.size(); ++l) {
    EXPECT_EQ(layerStatsToJson(second.stats[l]), layerStatsToJson(reference[l]));
  }

  // Corrupt entries: ignored (a scan runs again) and replaced by a good one.
  const std::string good = readAll(entry);
  nlohmann::json tampered = nlohmann::json::parse(good);
  tampered["layers"][0]["keys"]["std"] = 123.0;  // checksum no longer matches
  nlohmann::json missingLayer = nlohmann::json::parse(good);
  missingLayer["layers"].erase(1);
  nlohmann::json negativeStd = nlohmann::json::parse(good);
  negativeStd["layers"][2]["values"]["per_head"][1]["std"] = -1.0;
  nlohmann::json shortChannels = nlohmann::json::parse(good);
  shortChannels["layers"][0]["keys"]["channel_mean_abs"].erase(0);
  nlohmann::json otherShape = nlohmann::json::parse(good);
  otherShape["header"]["head_dim"] = 16;
  ASSERT_EQ(reseal(nlohmann::json::parse(good)), good);  // the helper seals as the cache does
  for (const std::string& bad :
       {std::string("{ not json"), good.substr(0, good.size() / 2), std::string(), tampered.dump(),
        reseal(missingLayer), reseal(negativeStd), reseal(shortChannels), reseal(otherShape)}) {
    std::ofstream(entry, std::ios::binary | std::ios::trunc) << bad;
    const OpenedDump reopened = openDump(path, policy);
    EXPECT_FALSE(reopened.statsFromCache) << bad.substr(0, 40);
    EXPECT_EQ(layerStatsToJson(reopened.stats[1]), layerStatsToJson(reference[1]));
    EXPECT_EQ(readAll(entry), good);  // rewritten
  }

  // A changed file: new mtime -> new key -> scanned again, new entry.
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  const struct utimbuf later { st.st_atime, st.st_mtime + 10 };
  ASSERT_EQ(::utime(path.c_str(), &later), 0);
  const OpenedDump changed = openDump(path, policy);
  EXPECT_FALSE(changed.statsFromCache);
  EXPECT_NE(statsCacheKey(path, identifyFile(path)).mtimeNs, key.mtimeNs);
  EXPECT_TRUE(openDump(path, policy).statsFromCache);

  // --no-cache: neither read nor written.
  OpenPolicy noCache = policy;
  noCache.useCache = false;
  noCache.cacheDirectory = (dir / "other-cache").string();
  EXPECT_FALSE(openDump(path, noCache).statsFromCache);
  EXPECT_FALSE(std::filesystem::exists(noCache.cacheDirectory));
}

INSTANTIATE_TEST_SUITE_P(OpenPaths, StatsCacheTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("isolated") : std::string("in_process");
                         });

TEST(StatsCacheKey, FollowsContentNotName) {
  const auto dir = test::freshTempDir();
  // Uncompressed: same size and layout, values differ in one place only.
  auto write = [&](const std::string& name, float poke) {
    DumpHeader h = test::dumpHeader("key", 1, 2, 8, 4096, DType::Float16);
    h.gzip = false;
    std::vector<float> data(static_cast<size_t>(4096 * 2 * 8), 0.25f);
    data[data.size() / 2] = poke;
    const std::string path = (dir / name).string();
    auto writer = DumpWriter::create(path, h);
    writer->writeLayer(0, test::slabOf(4096, 2, 8, data), test::slabOf(4096, 2, 8, data));
    writer->commit();
    return path;
  };
  const std::string a = write("a.h5", 1.0f);
  const std::string b = write("b.h5", 2.0f);
  const FileIdentity ia = identifyFile(a);
  FileIdentity ib = identifyFile(b);
  ASSERT_EQ(ia.size, ib.size);
  // Same mtime for both, so only the sampled content can tell them apart.
  const struct utimbuf same {
    static_cast<time_t>(ia.mtimeNs / 1000000000), static_cast<time_t>(ia.mtimeNs / 1000000000)
  };
  ASSERT_EQ(::utime(a.c_str(), &same), 0);
  ASSERT_EQ(::utime(b.c_str(), &same), 0);
  const StatsCacheKey ka = statsCacheKey(a, identifyFile(a));
  const StatsCacheKey kb = statsCacheKey(b, identifyFile(b));
  EXPECT_EQ(ka.size, kb.size);
  EXPECT_EQ(ka.mtimeNs, kb.mtimeNs);
  EXPECT_NE(ka.contentHash, kb.contentHash);
  EXPECT_EQ(ka.contentHash.size(), 32u);
  // A renamed file keeps its key (and so its entry).
  const std::string moved = (dir / "moved.h5").string();
  std::filesystem::rename(a, moved);
  const StatsCacheKey km = statsCacheKey(moved, identifyFile(moved));
  EXPECT_EQ(km.contentHash, ka.contentHash);
  EXPECT_EQ(km.mtimeNs, ka.mtimeNs);
  // The key refuses a file that is not the one identified.
  EXPECT_THROW(statsCacheKey(b, identifyFile(moved)), Error);
}

TEST(StatsCache, DefaultDirectoryFollowsXdg) {
  const char* saved = std::getenv("XDG_CACHE_HOME");
  const std::string restore = saved != nullptr ? saved : "";
  ::setenv("XDG_CACHE_HOME", "/somewhere/cache", 1);
  EXPECT_EQ(StatsCache::defaultDirectory(), "/somewhere/cache/kvq-studio/stats");
  ::setenv("XDG_CACHE_HOME", "relative/ignored", 1);
  EXPECT_EQ(StatsCache::defaultDirectory(), std::string(std::getenv("HOME")) + "/.cache/kvq-studio/stats");
  if (saved != nullptr) {
    ::setenv("XDG_CACHE_HOME", restore.c_str(), 1);
  } else {
    ::unsetenv("XDG_CACHE_HOME");
  }
}

}  // namespace
}  // namespace kvq
