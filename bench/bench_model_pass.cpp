// The model pass of `kvq ppl` against the numpy pass of tools/kvq_dump, in one run, on the
// bundled sample's 4096 tokens and its model (docs/benchmarks.md, "Model pass"):
//   1. GEMMs of the model's shapes through OpenBLAS and through Eigen (no -march: SSE2);
//   2. the reference pass (forward, head, log-likelihoods) with each GEMM engine;
//   3. the numpy pass (bench/numpy_pass.py) on the same tokens;
//   4. with --cuda (CUDA builds), the reference pass with its weight products on cuBLAS.
//
//   bench_model_pass [--model M.gguf | --synthetic] [--dump D.h5] [--no-numpy] [--no-eigen-pass] [--cuda]
// The model defaults to $KVQ_SMOLLM2_GGUF, else the cache of scripts/fetch_model.sh. --synthetic:
// random weights of SmolLM2-135M's shapes (kvq/model/random_model.h) for a machine without the
// GGUF (the GPU machine reaches no network; scripts/gpu_check.sh): the same work, a meaningless
// perplexity, no numpy pass. The last line is BENCH_MODEL_JSON {...} with every time.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/base/openmp_process.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/perplexity.h"
#include "kvq/model/random_model.h"
#include "model/fast_exp.h"
#include "model/gemm.h"
#ifdef KVQ_HAVE_CUBLAS
#include "kvq/gpu/cublas_model_gemm.h"
#endif

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

// backend "cpu" (the weight products on `engine`) or "cuda" (on cuBLAS; attention on the CPU).
double referencePass(const kvq::DecoderModel& model, const kvq::DumpReader& dump,
                     kvq::model::GemmEngine engine, const std::string& backend = "cpu") {
  kvq::model::setGemmEngine(engine);
  kvq::PplOptions options;
  options.checkDump = false;
  options.backend = backend;
  const auto t = Clock::now();
  const kvq::PplReport r = kvq::evaluatePerplexity(model, dump, options);
  const double s = since(t);
  std::printf("  %-9s reference pass over %lld predictions: %7.2f s  (perplexity %.4f; %s)\n",
              backend == "cpu" ? kvq::model::gemmEngineName(engine) : "cublas",
              static_cast<long long>(r.reference.tokens), s, r.reference.perplexity(), r.passEngine.c_str());
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
  kvq::preferPassiveOpenMpWait(argv);  // as kvq ppl does
  std::string model = std::getenv("KVQ_SMOLLM2_GGUF") != nullptr ? std::getenv("KVQ_SMOLLM2_GGUF") : "";
  if (model.empty() && std::getenv("HOME") != nullptr) {
    model = std::string(std::getenv("HOME")) + "/.cache/kvq-studio/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  }
  std::string dump = KVQ_SAMPLE_DUMP;
  bool numpy = true, eigenPass = true, cuda = false, synthetic = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model = argv[++i];
    if (a == "--dump" && i + 1 < argc) dump = argv[++i];
    if (a == "--no-numpy") numpy = false;
    if (a == "--no-eigen-pass") eigenPass = false;
    if (a == "--cuda") cuda = true;
    if (a == "--synthetic") synthetic = true;
  }
#ifdef KVQ_HAVE_CUBLAS
  kvq::gpu::registerCublasModelGemm();
#else
  if (cuda) {
    std::fprintf(stderr, "bench_model_pass: --cuda: this build has no cuBLAS model pass\n");
    return 2;
  }
#endif
  if (synthetic) numpy = false;  // numpy needs the GGUF file
  try {
    const char* policy = std::getenv("OMP_WAIT_POLICY");
    std::printf("threads %d, OpenMP wait policy %s, exp kernels %s\n", omp_get_max_threads(),
                policy != nullptr ? policy : "default", kvq::model::fastExpIsa());
    std::printf("GEMMs of SmolLM2-135M's shapes (2048 tokens):\n");
    for (auto engine : {kvq::model::GemmEngine::OpenBlas, kvq::model::GemmEngine::Eigen}) {
      benchGemm(engine, "q/k/v", 2048, 960, 576);
      benchGemm(engine, "gate/up", 2048, 3072, 576);
      benchGemm(engine, "down", 2048, 576, 1536);
      benchGemm(engine, "head (128 rows)", 128, 49152, 576);
    }
    auto t = Clock::now();
    const auto m =
        synthetic ? kvq::makeRandomDecoderModel(kvq::smolLm2Config(), 1) : kvq::loadDecoderModel(model);
    std::printf("model %s in %.2f s\n",
                synthetic ? "made (random weights, SmolLM2-135M's shapes)" : "loaded and dequantized",
                since(t));
    const auto d = kvq::DumpReader::open(dump, {.scanValues = false});
    const auto engine = kvq::model::GemmEngine::OpenBlas;
    const double blas = referencePass(*m, *d, engine);
    const double eigen = eigenPass ? referencePass(*m, *d, kvq::model::GemmEngine::Eigen) : -1;
    const double np = numpy ? numpyPass(model, dump) : -1;
    if (np > 0) std::printf("numpy / C++ (OpenBLAS): %.2fx\n", np / blas);
    double gpu = -1;
    if (cuda) {
      referencePass(*m, *d, engine, "cuda");  // warm-up: CUDA context, cuBLAS handles and kernels
      gpu = referencePass(*m, *d, engine, "cuda");
      std::printf("OpenBLAS / cuBLAS: %.2fx\n", blas / gpu);
    }
    std::printf(
        "BENCH_MODEL_JSON {\"threads\": %d, \"synthetic\": %s, \"openblas_s\": %.3f, \"eigen_s\": %.3f, "
        "\"numpy_s\": %.3f, \"cublas_s\": %.3f}\n",
        omp_get_max_threads(), synthetic ? "true" : "false", blas, eigen, np, gpu);
  } catch (const kvq::Error& e) {
    std::fprintf(stderr, "bench_model_pass: %s\n", e.what());
    return 2;
  }
  return 0;
}
