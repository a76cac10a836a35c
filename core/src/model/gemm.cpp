#include "model/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

extern "C" void openblas_set_num_threads(int num_threads);  // OpenBLAS extension (cblas.h may lack it)

namespace kvq::model {

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstMap = Eigen::Map<const RowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;

// OpenBLAS runs single-threaded inside our OpenMP pieces (set once, before the first product).
void singleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// Splits the n output columns into 1 to 4 pieces per thread (multiples of 16 columns, at least
// 256 where n allows) and runs piece(n0, n1) for each, handing them out as threads come free: on
// a loaded machine one thread is often descheduled, and the other then takes its share instead of
// waiting for it. Runs it whole when already inside a parallel region or n is small.
template <typename Piece>
void splitColumns(int64_t m, int64_t n, int64_t k, Piece piece) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Below about a million multiply-adds a split costs more than it saves.
  if (threads <= 1 || m * n * k < (int64_t{1} << 20) || n < 32) {
    piece(0, n);
    return;
  }
  const int64_t wanted = threads * std::clamp<int64_t>(n / (256 * int64_t{threads}), 1, 4);
  const int64_t step = ((n + wanted - 1) / wanted + 15) / 16 * 16, pieces = (n + step - 1) / step;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int64_t p = 0; p < pieces; ++p) piece(p * step, std::min(n, (p + 1) * step));
}

// c = a b + beta c (Eigen); beta 0 overwrites c instead of scaling it.
template <typename B>
void eigenProduct(const ConstMap& a, const B& b, float beta, Map& c) {
  if (beta == 0.0f) {
    c.noalias() = a * b;
  } else {
    c *= beta;
    c.noalias() += a * b;
  }
}

// C = A op(B) + beta C, in column pieces of C (splitColumns); op(B) = B^T for B [n, k] when
// transposeB, else B [k, n]. Shapes and strides as gemmABt / gemmAB take them.
template <bool transposeB>
void gemmInPieces(GemmEngine engine, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (engine == GemmEngine::OpenBlas) singleThreadedBlas();
  splitColumns(m, n, k, [&](int64_t n0, int64_t n1) {
    const float* bPiece = transposeB ? b + n0 * ldb : b + n0;  // B's rows (B^T) or columns n0..n1
    if (engine == GemmEngine::OpenBlas) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                  static_cast<int>(n1 - n0), static_cast<int>(k), 1.0f, a, static_cast<int>(lda), bPiece,
                  static_cast<int>(ldb), beta, c + n0, static_cast<int>(ldc));
      return;
    }
    ConstMap am(a, m, k, Eigen::OuterStride<>(lda));
    Map cm(c + n0, m, n1 - n0, Eigen::OuterStride<>(ldc));
    if constexpr (transposeB) {
      eigenProduct(am, ConstMap(bPiece, n1 - n0, k, Eigen::OuterStride<>(ldb)).transpose(), beta, cm);
    } else {
      eigenProduct(am, ConstMap(bPiece, k, n1 - n0, Eigen::OuterStride<>(ldb)), beta, cm);
    }
  });
}

}  // namespace

namespace {

std::atomic<GemmEngine>& engineSetting() {
  static std::atomic<GemmEngine> engine{[] {
    const char* env = std::getenv("KVQ_GEMM");
    return env != nullptr && std::strcmp(env, "eigen") == 0 ? GemmEngine::Eigen : GemmEngine::OpenBlas;
  }()};
  return engine;
}

}  // namespace

GemmEngine currentGemmEngine() {
  return engineSetting().load(std::memory_order_relaxed);
}

void setGemmEngine(GemmEngine engine) {
  engineSetting().store(engine, std::memory_order_relaxed);
}

const char* gemmEngineName(GemmEngine engine) {
  return engine == GemmEngine::Eigen ? "eigen" : "openblas";
}

void gemmABt(GemmEngine engine, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
             int64_t ldb, float beta, float* c, int64_t ldc) {
  gemmInPieces<true>(engine, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void gemmAB(GemmEngine engine, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
            int64_t ldb, float beta, float* c, int64_t ldc) {
  gemmInPieces<false>(engine, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace kvq::model
