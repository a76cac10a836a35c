// Opening untrusted files — the one open path of the CLI and the GUI.
//
// libhdf5 1.10 crashes, hangs or allocates without bound on damaged or hostile
// files, before any of our checks can run, and nobody can fix it here. So a dump,
// codebook file or codes file someone else made is first opened, validated and
// scanned in a child process — the `kvq` binary as `kvq validate --json-stream`
// (kvq/isolate/validator.h) — with limits on its address space, CPU time and wall
// time. A crash, hang or limit hit there becomes Error(BadInput) naming the file
// and what the library was doing ("the HDF5 library crashed (SIGSEGV) while
// reading root attribute 'model': the file is damaged or hostile"); this process
// never parses the file until it passed, and then only while its identity
// (device, inode, size, mtime) still matches.
//
// The child does the work an open has to do anyway — the value scan and the
// statistics, in one pass, in several processes when the dump has several layers
// (HDF5 1.10 serialises threads, processes run in parallel) — and streams it back:
// the header first (the GUI paints it at once), then each layer's statistics as
// they complete. Statistics are cached per user (kvq/dump/stats_cache.h); a cache
// hit needs the child only for the structure. docs/reliability.md has the threat
// model, docs/architecture.md the sequence.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/io/codebook_file.h"

namespace kvq {

// Limits of each validator process.
struct IsolationLimits {
  uint64_t memoryBytes = uint64_t{2} << 30;  // address space (RLIMIT_AS)
  double stallSeconds = 30;                  // wall time without a sign of progress
  double cpuSeconds = 0;                     // RLIMIT_CPU; 0: 120 s + 1 s per 16 MiB of file
};

struct OpenPolicy {
  bool isolate = true;    // false (--no-isolation, the GUI's "trusted files"): parse in this process
  bool useCache = true;   // false (--no-cache): neither read nor write the statistics cache
  std::string validator;  // the kvq binary; "" = locateValidator()
  int workers = 0;        // validator processes for the statistics; 0 = min(CPU cores, layers, 4)
  IsolationLimits limits;
  std::string cacheDirectory;  // "" = StatsCache::defaultDirectory()

  // The defaults, adjusted by KVQ_ISOLATION_MEMORY_MB, KVQ_ISOLATION_STALL_S,
  // KVQ_ISOLATION_CPU_S and KVQ_OPEN_WORKERS when set (docs/reliability.md).
  static OpenPolicy fromEnvironment();
};

// Called on the opening thread as results arrive.
struct OpenListener {
  std::function<void(const DumpInfo&)> onHeader;   // once, before any statistics
  std::function<void(const LayerStats&)> onLayer;  // once per layer, in any order
};

struct OpenedDump {
  std::unique_ptr<DumpReader> reader;  // opened in this process after the file passed
  std::vector<LayerStats> stats;       // every present layer, ascending
  bool statsFromCache = false;
};

// Opens path as a dump: validated (in a child unless policy.isolate is false),
// every value checked, statistics computed or taken from the cache. Progress and
// cancellation through control. Throws Error(BadInput) for a refused file (the
// reader's own message, or what the isolated library was doing when it failed),
// Error(Internal) when the validator cannot run, Error(Cancelled).
OpenedDump openDump(const std::string& path, const OpenPolicy& policy, const OpenListener& listener = {},
                    const TaskControl* control = nullptr);

// The isolated half of openDump for a process that reads only some layers of a
// dump (each rank of `mpirun kvq train`, docs/scaling.md): in child processes under
// policy's limits, whatever policy.isolate says, validates the structure of the file
// that has this identity and checks the values of `layers` (each must be present;
// none: the structure only). Returns the header. The caller may then open the file
// with OpenOptions::expectedIdentity = identity and read those layers. Throws as
// openDump; neither reads nor writes the statistics cache.
DumpInfo validateDumpIsolated(const std::string& path, const FileIdentity& identity,
                              const std::vector<int>& layers, const OpenPolicy& policy,
                              const TaskControl* control = nullptr);

// Reads a codebook file, validated in a child first unless policy.isolate is false.
CodebookFile openCodebookFile(const std::string& path, const OpenPolicy& policy);

}  // namespace kvq
