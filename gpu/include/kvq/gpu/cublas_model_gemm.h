// The model pass's weight products through cuBLAS (kvq/model/weight_gemm.h). Plain C++ header:
// callers never see a CUDA type. Its own library (kvq_gpu_gemm), the only one using cuBLAS,
// which it opens at run time (loadCublas) rather than links.
#pragma once

#include <memory>
#include <string>

#include "kvq/model/decoder_model.h"
#include "kvq/model/weight_gemm.h"

namespace kvq::gpu {

// Opens cuBLAS (library: what dlopen is given; empty: libcublas.so.<major of the headers built
// against>, from the loader's path or else the build's toolkit) and resolves the functions the
// engine calls, once per process. Throws Error(Resource) naming the library and what failed;
// makeCublasWeightGemm calls it, so `--backend auto` falls back to the CPU with that message.
// Not linking cuBLAS keeps its ~200 MB of mapped, initialised data out of every process that
// never multiplies on the GPU.
void loadCublas(const std::string& library = {});

struct CublasGemmOptions {
  int device = 0;
  // CUBLAS_COMPUTE_32F_FAST_TF32 instead of CUBLAS_COMPUTE_32F (weight_gemm.h says what it costs).
  bool allowTf32 = false;
};

// Uploads every weight matrix of `model` (modelWeightMatrices) to the device, once; each product
// then moves only its activations. fp32 products with CUBLAS_COMPUTE_32F (no TF32 unless
// options.allowTf32). Throws Error(Resource) when there is no device or the weights do not fit
// in its free memory. The engine must not outlive the model.
std::unique_ptr<WeightGemm> makeCublasWeightGemm(const DecoderModel& model,
                                                 const CublasGemmOptions& options = {});

// Registers a factory (device 0, the request's TF32 choice) with core, so that the model pass of
// `kvq ppl --backend cuda | auto` runs its weight products on the GPU. Call once from main().
void registerCublasModelGemm();

}  // namespace kvq::gpu
