// libFuzzer target: a codebook file through readCodebookFile and its JSON, as
// `kvq eval --codebooks` and the GUI read them.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
#include "kvq/io/codebook_file.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  kvq::fuzz::initialise("codebook");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvq::fuzz::runOnFile(data, size, [](const std::string& path) {
    const kvq::CodebookFile file = kvq::readCodebookFile(path);
    (void)kvq::configToJson(file.config);
  });
  return 0;
}
