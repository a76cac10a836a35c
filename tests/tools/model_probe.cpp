// kvq_model_probe: exposes the C++ model pass to the Python tests (tests/python/test_model_pass.py),
// which compare it with the numpy pass of tools/kvq_dump and the gguf package's dequantizers.
//
//   kvq_model_probe logits MODEL.gguf OUT.npy ID...   reference logits [T, vocab] float32
//   kvq_model_probe tensor MODEL.gguf NAME OUT.npy    a tensor dequantized, storage order
// Exit codes as kvq's: 2 bad input, 1 internal.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/io/npz_writer.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/model/gguf_file.h"

namespace {

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "logits" && argc >= 5) {
    const auto model = kvq::loadDecoderModel(argv[2]);
    std::vector<int32_t> ids;
    for (int i = 4; i < argc; ++i) ids.push_back(static_cast<int32_t>(std::atoi(argv[i])));
    const auto logits = kvq::sequenceLogits(*model, ids);
    const std::vector<int64_t> shape = {static_cast<int64_t>(ids.size()), model->config.vocab};
    kvq::atomicWriteFile(argv[3], kvq::npyFile("<f4", shape, logits.data(), logits.size() * sizeof(float)));
    return 0;
  }
  if (mode == "tensor" && argc == 5) {
    const auto file = kvq::GgufFile::open(argv[2]);
    const kvq::GgufTensorInfo* t = file->header().findTensor(argv[3]);
    if (t == nullptr) kvq::throwBadInput(argv[2], argv[3], "no such tensor");
    std::vector<float> out(t->elements);
    file->readFloat32(*t, out.data());
    std::vector<int64_t> shape(t->dims.rbegin(), t->dims.rend());  // numpy order: slowest first
    kvq::atomicWriteFile(argv[4], kvq::npyFile("<f4", shape, out.data(), out.size() * sizeof(float)));
    return 0;
  }
  std::fprintf(stderr, "usage: kvq_model_probe logits MODEL OUT.npy ID... | tensor MODEL NAME OUT.npy\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const kvq::Error& e) {
    std::fprintf(stderr, "kvq_model_probe: error: %s\n", e.what());
    return e.kind() == kvq::ErrorKind::BadInput ? 2 : 1;
  }
}
