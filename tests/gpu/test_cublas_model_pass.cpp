// The model pass with its weight products on cuBLAS (kvq/gpu/cublas_model_gemm.h) against the
// CPU pass: logits of the tiny GGUF model and of a random model of realistic shapes (products
// with beta = 1, a separate head, q/k/v biases, a row count that is not a multiple of any tile).
// The device tests skip without a CUDA device; the choice/fallback test runs everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/gpu/cublas_model_gemm.h"
#include "kvq/gpu/cuda_device.h"
#include "kvq/model/decoder_model.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/model/random_model.h"
#include "kvq/model/weight_gemm.h"

namespace {

const std::string kTiny = std::string(KVQ_TEST_DATA_DIR) + "/gguf/tiny_llama.gguf";

std::vector<int32_t> someTokens(int64_t n, int vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + 3) % vocab);
  return t;
}

// The largest |gpu - cpu| relative to the largest |cpu| (fp32 products summed in another order
// differ by a few ulps; the fidelity tolerance on logits is 1e-4).
double relativeMaxError(const std::vector<float>& gpu, const std::vector<float>& cpu) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(gpu[i]) - cpu[i]));
    scale = std::max(scale, std::abs(static_cast<double>(cpu[i])));
  }
  return err / scale;
}

class CublasModelPass : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kvq::gpu::listCudaDevices().empty()) GTEST_SKIP() << "no CUDA device on this machine";
  }
};

TEST_F(CublasModelPass, LogitsOfTheTinyGgufMatchTheCpuPass) {
  const auto model = kvq::loadDecoderModel(kTiny);
  const auto tokens = someTokens(40, model->config.vocab);
  const auto cpu = kvq::sequenceLogits(*model, tokens);
  auto gemm = kvq::gpu::makeCublasWeightGemm(*model);
  EXPECT_NE(gemm->name().find("cuBLAS fp32"), std::string::npos) << gemm->name();
  const auto gpu = kvq::sequenceLogits(*model, tokens, gemm.get());
  ASSERT_EQ(gpu.size(), cpu.size());
  EXPECT_LE(relativeMaxError(gpu, cpu), 1e-5);
}

TEST_F(CublasModelPass, LogitsOfARandomModelOfRealisticShapesMatchTheCpuPass) {
  kvq::ModelConfig c = kvq::decoderConfig(
      {.layers = 3, .hidden = 192, .qHeads = 6, .kvHeads = 2, .headDim = 32, .ffn = 512, .vocab = 3001});
  c.qkvBias = true;
  c.outputBias = true;
  const auto model = kvq::makeRandomDecoderModel(c, 7);
  const auto tokens = someTokens(333, c.vocab);
  const auto cpu = kvq::sequenceLogits(*model, tokens);
  auto gemm = kvq::gpu::makeCublasWeightGemm(*model);
  const auto gpu = kvq::sequenceLogits(*model, tokens, gemm.get());
  EXPECT_LE(relativeMaxError(gpu, cpu), 1e-4);
  // The same engine again (weights uploaded once, buffers reused): the same logits, bit for bit.
  EXPECT_EQ(kvq::sequenceLogits(*model, tokens, gemm.get()), gpu);
}

TEST_F(CublasModelPass, AProductWithAMatrixThatIsNotAWeightIsAnInternalError) {
  const auto model = kvq::loadDecoderModel(kTiny);
  auto gemm = kvq::gpu::makeCublasWeightGemm(*model);
  std::vector<float> a(4, 1.0f), w(4, 1.0f), c(1);
  try {
    gemm->multiplyABt(1, 1, 4, a.data(), 4, w.data(), 0.0f, c.data(), 1);
    FAIL() << "expected kvq::Error";
  } catch (const kvq::Error& e) {
    EXPECT_EQ(e.kind(), kvq::ErrorKind::Internal);
  }
}

TEST_F(CublasModelPass, Tf32OnlyWhenAsked) {
  const auto model = kvq::loadDecoderModel(kTiny);
  kvq::gpu::CublasGemmOptions options;
  options.allowTf32 = true;
  EXPECT_NE(kvq::gpu::makeCublasWeightGemm(*model, options)->name().find("TF32"), std::string::npos);
  EXPECT_EQ(kvq::gpu::makeCublasWeightGemm(*model)->name().find("TF32"), std::string::npos);
}

TEST(CublasModelPassChoice, AutoFallsBackToTheCpuWithAReason) {
  kvq::gpu::registerCublasModelGemm();
  const auto model = kvq::loadDecoderModel(kTiny);
  std::string note;
  const auto gemm = kvq::makeWeightGemm("auto", *model, {}, &note);
  ASSERT_NE(gemm, nullptr);
  if (kvq::gpu::listCudaDevices().empty()) {
    EXPECT_EQ(gemm->name().rfind("CPU", 0), 0u) << gemm->name();
    EXPECT_NE(note.find("no GPU: no CUDA device"), std::string::npos) << note;
    try {
      (void)kvq::makeWeightGemm("cuda", *model);
      FAIL() << "expected kvq::Error";
    } catch (const kvq::Error& e) {
      EXPECT_EQ(e.kind(), kvq::ErrorKind::Resource);
    }
  } else {
    EXPECT_NE(gemm->name().find("cuBLAS"), std::string::npos) << gemm->name();
  }
  kvq::registerGpuGemmFactory(nullptr);
}

bool mapsCublas() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("libcublas") != std::string::npos) return true;
  }
  return false;
}

// Every test runs in a process of its own (gtest_discover_tests), so each sees cuBLAS unloaded.
TEST(CublasLoader, OpensTheToolkitsLibraryOnlyWhenAsked) {
  const std::string file =
      std::string(KVQ_CUDA_LIBRARY_DIR) + "/libcublas.so." + std::to_string(KVQ_CUBLAS_MAJOR);
  if (!std::ifstream(file).good()) GTEST_SKIP() << file << " is not installed";
  EXPECT_FALSE(mapsCublas()) << "cuBLAS is mapped before any engine asked for it (linked?)";
  kvq::gpu::loadCublas();
  EXPECT_TRUE(mapsCublas());
  kvq::gpu::loadCublas();  // once per process: a second call is a no-op
}

// loadCublas(library) must throw a Resource error whose message contains `says`.
void expectRefusal(const std::string& library, const std::string& says) {
  try {
    kvq::gpu::loadCublas(library);
    FAIL() << "expected kvq::Error";
  } catch (const kvq::Error& e) {
    EXPECT_EQ(e.kind(), kvq::ErrorKind::Resource);
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(CublasLoader, AMissingLibraryIsAResourceErrorNamingIt) {
  expectRefusal("libkvq-no-such-cublas.so.0", "libkvq-no-such-cublas.so.0");
}

TEST(CublasLoader, ALibraryWithoutCublasIsRefusedNamingTheSymbol) {
  expectRefusal("libm.so.6", "no symbol cublasCreate_v2");
}

}  // namespace
