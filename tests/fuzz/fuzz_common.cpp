#include "fuzz_common.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string_view>

#include "kvq/base/error.h"
#include "kvq/base/hdf5_process.h"

namespace kvq::fuzz {
namespace {

struct Counts {
  unsigned long long tried = 0;
  unsigned long long refused = 0;
  unsigned long long accepted = 0;
};

Counts g_counts;
std::string g_statsPath;    // "" when not requested
std::string g_acceptedDir;  // where accepted inputs are kept for review ("" = not kept)
std::string g_scratchPath;  // the file each input is written to

void writeStats() {
  if (g_statsPath.empty()) return;
  std::ofstream out(g_statsPath, std::ios::trunc);
  out << "tried " << g_counts.tried << "\nrefused " << g_counts.refused << "\naccepted " << g_counts.accepted
      << "\n";
}

// An accepted mutant may be a policy gap: keep it (named by its content hash) so
// the campaign can review every kind of acceptance.
void keepAccepted(const uint8_t* data, size_t size) {
  if (g_acceptedDir.empty()) return;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  char name[32];
  std::snprintf(name, sizeof name, "%016zx.h5", std::hash<std::string_view>{}(bytes));
  std::ofstream out(g_acceptedDir + "/" + name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void removeScratch() {
  std::error_code ec;
  std::filesystem::remove(g_scratchPath, ec);
}

}  // namespace

void initialise(const char* name) {
  prepareHdf5ForProcess();
  const std::string pid = std::to_string(static_cast<long>(::getpid()));
  const char* shm = "/dev/shm";
  const std::filesystem::path dir =
      std::filesystem::is_directory(shm) ? shm : std::filesystem::temp_directory_path();
  g_scratchPath = (dir / (std::string("kvq-fuzz-") + name + "-" + pid + ".h5")).string();
  if (const char* stats = std::getenv("KVQ_FUZZ_STATS_DIR")) {
    g_statsPath = std::string(stats) + "/" + name + "-" + pid + ".txt";
  }
  if (const char* accepted = std::getenv("KVQ_FUZZ_ACCEPTED_DIR")) g_acceptedDir = accepted;
  std::atexit([] {
    writeStats();
    removeScratch();
  });
}

void runOnFile(const uint8_t* data, size_t size,
               const std::function<void(const std::string& path)>& readFile) {
  {
    std::ofstream out(g_scratchPath, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  ++g_counts.tried;
  try {
    readFile(g_scratchPath);
    ++g_counts.accepted;
    keepAccepted(data, size);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) {
      std::fprintf(stderr, "kvq fuzz: bad input became a %s error: %s\n",
                   e.kind() == ErrorKind::Internal ? "internal" : "non-input", e.what());
      std::abort();
    }
    ++g_counts.refused;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvq fuzz: exception escaped the reader: %s\n", e.what());
    std::abort();
  }
  if (g_counts.tried % 256 == 0) writeStats();
}

}  // namespace kvq::fuzz
