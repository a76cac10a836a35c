// libFuzzer target: a GGUF model file through the reader (header, every tensor
// dequantized) and the model loader (configuration from the metadata, shapes), as
// `kvq ppl` and the GUI's Model impact tab read them.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_common.h"
#include "kvq/base/error.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/gguf_file.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  kvq::fuzz::initialise("gguf");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvq::fuzz::runOnFile(data, size, [](const std::string& path) {
    const auto file = kvq::GgufFile::open(path);
    std::vector<float> values;
    for (const kvq::GgufTensorInfo& tensor : file->header().tensors) {
      // Each tensor on its own: one that cannot be dequantized must not hide the others.
      try {
        values.resize(tensor.elements);  // bounded: the reader checked the data lies in the file
        file->readFloat32(tensor, values.data());
      } catch (const kvq::Error& e) {
        if (e.kind() != kvq::ErrorKind::BadInput) throw;
      }
    }
    kvq::ModelLoadOptions options;
    options.memoryBudget = uint64_t{256} << 20;
    (void)kvq::loadDecoderModel(path, options);
  });
  return 0;
}
