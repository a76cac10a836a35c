// libFuzzer target: a dump through everything `kvq info --json` does with it —
// open (structure validation + value scan), statistics, token ids, JSON.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "fuzz_common.h"
#include "kvq/dump/dump_json.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  kvq::fuzz::initialise("dump");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvq::fuzz::runOnFile(data, size, [](const std::string& path) {
    kvq::OpenOptions options;
    options.maxReadBytes = uint64_t{64} << 20;  // a fuzz input is small; its claims must not be
    const auto reader = kvq::DumpReader::open(path, options);
    const auto stats = kvq::computeDumpStats(*reader);
    (void)reader->tokenIds();
    (void)kvq::dumpInfoToJson(reader->info(), stats).dump();
  });
  return 0;
}
