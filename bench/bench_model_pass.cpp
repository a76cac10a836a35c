// The model pass of `kvq ppl` against the numpy pass of tools/kvq_dump, in one run, on the
// bundled sample's 4096 tokens and its model (docs/benchmarks.md, "Model pass"):
//   1. GEMMs of the model's shapes through OpenBLAS and through Eigen (no -march: SSE2);
//   2. the reference pass (forward, head, log-likelihoods) with each GEMM engine;
//   3. the numpy pass (bench/numpy_pass.py) on the same tokens.
//
//   bench_model_pass [--model M.gguf] [--dump D.h5] [--no-numpy] [--no-eigen-pass]
// The model defaults to $KVQ_SMOLLM2_GGUF, else the cache of scripts/fetch_model.sh.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/perplexity.h"
#include "model/fast_exp.h"
#include "model/gemm.h"

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void benchGemm(kvq::model::GemmEngine engine, const char* what, int64_t m, int64_t n, int64_t k) {
  std::vector<float> a(static_cast<size_t>(m * k), 0.5f), b(static_cast<size_t>(n * k), 0.25f),
      c(static_cast<size_t>(m * n));
  kvq::model::gemmABt(engine, m, n, k, a.data(), k, b.data(), k, 0.0f, c.data(), n);  // warm-up
  const int reps = 5;
  const auto t = Clock::now();
  for (int r = 0; r < reps; ++r)
    kvq::model::gemmABt(engine, m, n, k, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  const double s = since(t) / reps;
  std::printf("  %-9s %-26s [%lld x %lld] x [%lld x %lld]^T  %8.2f ms  %6.1f GFLOP/s\n",
              kvq::model::gemmEngineName(engine), what, static_cast<long long>(m), static_cast<long long>(k),
              static_cast<long long>(n), static_cast<long long>(k), s * 1e3, 2.0 * m * n * k / s / 1e9);
}

double referencePass(const kvq::DecoderModel& model, const kvq::DumpReader& dump,
                     kvq::model::GemmEngine engine) {
  kvq::model::setGemmEngine(engine);
  kvq::PplOptions options;
  options.checkDump = false;
  const auto t = Clock::now();
  const kvq::PplReport r = kvq::evaluatePerplexity(model, dump, options);
  const double s = since(t);
  std::printf("  %-9s reference pass over %lld predictions: %7.2f s  (perplexity %.4f)\n",
              kvq::model::gemmEngineName(engine), static_cast<long long>(r.reference.tokens), s,
              r.reference.perplexity());
  return s;
}

double numpyPass(const std::string& model, const std::string& dump) {
  const std::string cmd = "python3 " KVQ_SOURCE_DIR "/bench/numpy_pass.py '" + model + "' '" + dump + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char line[512] = "";
  const bool got = std::fgets(line, sizeof line, p) != nullptr;
  pclose(p);
  if (!got) return -1;
  const char* s = std::strstr(line, "\"seconds\": ");
  const char* ppl = std::strstr(line, "\"perplexity\": ");
  const double seconds = s != nullptr ? std::atof(s + 11) : -1;
  std::printf("  numpy     reference pass (tools/kvq_dump):        %7.2f s  (perplexity %.4f)\n", seconds,
              ppl != nullptr ? std::atof(ppl + 14) : 0.0);
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = std::getenv("KVQ_SMOLLM2_GGUF") != nullptr ? std::getenv("KVQ_SMOLLM2_GGUF") : "";
  if (model.empty() && std::getenv("HOME") != nullptr) {
    model = std::string(std::getenv("HOME")) + "/.cache/kvq-studio/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  std::string dump = KVQ_SAMPLE_DUMP;
  bool numpy = true, eigenPass = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model = argv[++i];
    if (a == "--dump" && i + 1 < argc) dump = argv[++i];
    if (a == "--no-numpy") numpy = false;
    if (a == "--no-eigen-pass") eigenPass = false;
  }
  try {
    std::printf("threads %d, exp kernels %s\n", omp_get_max_threads(), kvq::model::fastExpIsa());
    std::printf("GEMMs of SmolLM2-135M's shapes (2048 tokens):\n");
    for (auto engine : {kvq::model::GemmEngine::OpenBlas, kvq::model::GemmEngine::Eigen}) {
      benchGemm(engine, "q/k/v", 2048, 960, 576);
      benchGemm(engine, "gate/up", 2048, 3072, 576);
      benchGemm(engine, "down", 2048, 576, 1536);
      benchGemm(engine, "head (64 rows)", 64, 49152, 576);
    }
    auto t = Clock::now();
    const auto m = kvq::loadDecoderModel(model);
    std::printf("model loaded and dequantized in %.2f s\n", since(t));
    const auto d = kvq::DumpReader::open(dump, {.scanValues = false});
    const double blas = referencePass(*m, *d, kvq::model::GemmEngine::OpenBlas);
    if (eigenPass) referencePass(*m, *d, kvq::model::GemmEngine::Eigen);
    if (numpy) {
      const double np = numpyPass(model, dump);
      if (np > 0) std::printf("numpy / C++ (OpenBLAS): %.2fx\n", np / blas);
    }
  } catch (const kvq::Error& e) {
    std::fprintf(stderr, "bench_model_pass: %s\n", e.what());
    return 2;
  }
  return 0;
}
