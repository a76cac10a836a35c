// Shared part of the libFuzzer targets (tests/fuzz/, docs/reliability.md): the
// input goes to a file (the readers take paths, as the tools do), the target runs
// the reader, and each outcome is counted. A kvq::Error of kind BadInput is a clean
// refusal; any other exception escaping a reader is a bug of ours and aborts, so
// libFuzzer records it as a crash. Counts go to $KVQ_FUZZ_STATS_DIR (one file per
// process, rewritten every 256 inputs and at exit) for scripts/fuzz.sh's table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace kvq::fuzz {

// Sets up the process (HDF5 quiet at exit, bounded deflate) and the stats file of
// target `name`. Call from LLVMFuzzerInitialize.
void initialise(const char* name);

// Writes the input to this process's scratch file and runs `readFile` on its path,
// counting a refusal or an acceptance; aborts on any other failure.
void runOnFile(const uint8_t* data, size_t size,
               const std::function<void(const std::string& path)>& readFile);

}  // namespace kvq::fuzz
