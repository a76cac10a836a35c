// The CPU backend: exact nearest-entry search in tiles of vectors against a whole
// stage codebook, with the argmin taken while the distances are still in registers
// (cpu_kernels.h), OpenMP over tiles. Every per-vector result depends only on that
// vector, and every sum is formed per tile in row order and then merged in tile
// order, so results do not depend on the number of threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/cpu_backend.h"
#include "rvq/cpu_kernels.h"

namespace kvq {
namespace {

constexpr int64_t kTile = 256;  // vectors per tile: a tile's residuals (32 KB at g = 32) stay in L1/L2

int64_t roundUp(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}

// Squared distance |a - b|^2 accumulated in double. a, b: [g]
double squaredDistance(const float* a, const float* b, int g) {
  double s = 0.0;
  for (int d = 0; d < g; ++d) {
    const double t = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    s += t * t;
  }
  return s;
}

// r <- r - c in float; returns |r|^2 of the result accumulated in double. r, c: [g]
double subtractAndEnergy(float* r, const float* c, int g) {
  double e = 0.0;
  for (int d = 0; d < g; ++d) {
    r[d] -= c[d];
    e += static_cast<double>(r[d]) * static_cast<double>(r[d]);
  }
  return e;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : m_threads(threads), m_isa(cpu::detectIsa()) {}

  std::string name() const override {
    return "CPU (" + std::to_string(threadCount()) + " threads, " + cpu::isaName(m_isa) + ")";
  }

  void nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
               float* dist) override;
  void encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes, double* depthError,
                    float* residual) override;
  void encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                  double* depthError, float* residual) override;
  void accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                  double* sums) override;

 private:
  int threadCount() const { return m_threads > 0 ? m_threads : omp_get_max_threads(); }
  std::vector<cpu::PackedCodebook> packAll(const Codebooks& books) const;

  int m_threads;
  cpu::Isa m_isa;
};

std::vector<cpu::PackedCodebook> CpuBackend::packAll(const Codebooks& books) const {
  std::vector<cpu::PackedCodebook> packed(static_cast<size_t>(books.depth));
  for (int k = 0; k < books.depth; ++k)
    packed[static_cast<size_t>(k)].pack(books.stage(k), books.size, books.dim, m_isa);
  return packed;
}

void CpuBackend::nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
                         float* dist) {
  if (n <= 0) return;
  cpu::PackedCodebook cb;
  cb.pack(codebook, C, g, m_isa);
  const int64_t tiles = (n + kTile - 1) / kTile;
  // Scratch per thread, allocated here: a bad_alloc inside the parallel region
  // would call std::terminate instead of reaching the caller.
  const int threads = threadCount();
  std::vector<std::vector<float>> mAll(static_cast<size_t>(threads),
                                       std::vector<float>(static_cast<size_t>(kTile * g)));
  std::vector<std::vector<int32_t>> codesAll(static_cast<size_t>(threads),
                                             std::vector<int32_t>(static_cast<size_t>(kTile)));
#pragma omp parallel num_threads(threads)
  {
    std::vector<float>& m = mAll[static_cast<size_t>(omp_get_thread_num())];
    std::vector<int32_t>& tileCodes = codesAll[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t begin = t * kTile;
      const int rows = static_cast<int>(std::min(kTile, n - begin));
      const int padded = static_cast<int>(roundUp(rows, cpu::kRowBlock));
      const float* xt = x + begin * g;
      for (int64_t i = 0; i < static_cast<int64_t>(rows) * g; ++i) m[static_cast<size_t>(i)] = -2.0f * xt[i];
      std::fill(m.begin() + static_cast<int64_t>(rows) * g, m.begin() + static_cast<int64_t>(padded) * g,
                0.0f);
      cpu::nearestRows(m_isa, m.data(), padded, cb, tileCodes.data());
      for (int r = 0; r < rows; ++r) {
        codes[begin + r] = tileCodes[static_cast<size_t>(r)];
        if (dist != nullptr) {
          dist[begin + r] = static_cast<float>(
              squaredDistance(xt + static_cast<int64_t>(r) * g,
                              codebook + static_cast<int64_t>(tileCodes[static_cast<size_t>(r)]) * g, g));
        }
      }
    }
  }
}

void CpuBackend::encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes,
                              double* depthError, float* residual) {
  if (n <= 0) return;
  const int K = books.depth;
  const int g = books.dim;
  const std::vector<cpu::PackedCodebook> packed = packAll(books);
  const int64_t tiles = (n + kTile - 1) / kTile;
  // Per-tile partial sums, merged in tile order below: thread-count independent.
  std::vector<double> tileError(depthError != nullptr ? static_cast<size_t>(tiles * K) : 0, 0.0);
  // Scratch per thread allocated outside the region (bad_alloc there would terminate).
  struct GreedyScratch {
    std::vector<float> r, m;
    std::vector<int32_t> tileCodes;
  };
  const int threads = threadCount();
  std::vector<GreedyScratch> scratch(static_cast<size_t>(threads));
  for (GreedyScratch& sc : scratch) {
    sc.r.resize(static_cast<size_t>(kTile * g));
    sc.m.resize(static_cast<size_t>(kTile * g));
    sc.tileCodes.resize(static_cast<size_t>(kTile));
  }
#pragma omp parallel num_threads(threads)
  {
    GreedyScratch& sc = scratch[static_cast<size_t>(omp_get_thread_num())];
    std::vector<float>& r = sc.r;
    std::vector<float>& m = sc.m;
    std::vector<int32_t>& tileCodes = sc.tileCodes;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t begin = t * kTile;
      const int rows = static_cast<int>(std::min(kTile, n - begin));
      const int64_t used = static_cast<int64_t>(rows) * g;
      const int64_t padded = roundUp(rows, cpu::kRowBlock) * g;
      std::copy(x + begin * g, x + begin * g + used, r.begin());
      std::fill(m.begin() + used, m.begin() + padded, 0.0f);
      for (int k = 0; k < K; ++k) {
        for (int64_t i = 0; i < used; ++i) m[static_cast<size_t>(i)] = -2.0f * r[static_cast<size_t>(i)];
        cpu::nearestRows(m_isa, m.data(), static_cast<int>(padded / g), packed[static_cast<size_t>(k)],
                         tileCodes.data());
        double err = 0.0;
        for (int i = 0; i < rows; ++i) {
          const int32_t code = tileCodes[static_cast<size_t>(i)];
          codes[(begin + i) * K + k] = code;
          err += subtractAndEnergy(r.data() + static_cast<int64_t>(i) * g, books.entry(k, code), g);
        }
        if (depthError != nullptr) tileError[static_cast<size_t>(t * K + k)] = err;
      }
      if (residual != nullptr) std::copy(r.begin(), r.begin() + used, residual + begin * g);
    }
  }
  if (depthError != nullptr) {
    for (int64_t t = 0; t < tiles; ++t) {
      for (int k = 0; k < K; ++k) depthError[k] += tileError[static_cast<size_t>(t * K + k)];
    }
  }
}

// One partial path of the beam search of one vector.
struct Path {
  double energy = 0.0;  // |residual|^2 after the stages so far (exact, double)
  int parent = 0;       // index of the path it extends (within the vector's beam)
  int32_t entry = 0;    // entry chosen at this stage
};

void CpuBackend::encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                            double* depthError, float* residual) {
  if (n <= 0) return;
  if (beam < 1) throwInternal("encodeBeam", "beam width must be at least 1");
  const int K = books.depth;
  const int C = books.size;
  const int g = books.dim;
  const int B = std::min(beam, C);
  const std::vector<cpu::PackedCodebook> packed = packAll(books);
  const int padC = packed.empty() ? C : packed[0].padded;
  // Vectors per tile: about 256 path rows, and the tile's [rows, padded C] distance block
  // within 16 MB (2 MB at C = 2048) unless a single vector's paths need more.
  const int64_t rowBudget =
      std::min<int64_t>(256, std::max<int64_t>(cpu::kRowBlock, (int64_t{1} << 22) / padC));
  const int64_t tileVectors = std::max<int64_t>(1, rowBudget / B);
  const int64_t tiles = (n + tileVectors - 1) / tileVectors;
  std::vector<double> tileError(depthError != nullptr ? static_cast<size_t>(tiles * K) : 0, 0.0);
  struct Candidate {
    double energy;
    int path;
    int32_t entry;
  };
  // Scratch per thread allocated outside the region (bad_alloc there would terminate).
  struct BeamScratch {
    std::vector<float> res, nextRes, m, dist, tmp;
    std::vector<int32_t> pathCodes, nextCodes;
    std::vector<double> pathErr, nextErr;
    std::vector<std::pair<float, int32_t>> top;
    std::vector<Candidate> cand;
  };
  const size_t maxRows = static_cast<size_t>(roundUp(tileVectors * B, cpu::kRowBlock));
  const int threads = threadCount();
  std::vector<BeamScratch> scratch(static_cast<size_t>(threads));
  for (BeamScratch& sc : scratch) {
    for (std::vector<float>* v : {&sc.res, &sc.nextRes, &sc.m}) v->resize(maxRows * g);
    sc.dist.resize(maxRows * static_cast<size_t>(padC));
    sc.tmp.resize(static_cast<size_t>(g));
    sc.pathCodes.resize(maxRows * K);
    sc.nextCodes.resize(maxRows * K);
    sc.pathErr.resize(maxRows * K);
    sc.nextErr.resize(maxRows * K);
    sc.top.resize(static_cast<size_t>(B));
    sc.cand.resize(static_cast<size_t>(B) * B);
  }
#pragma omp parallel num_threads(threads)
  {
    BeamScratch& sc = scratch[static_cast<size_t>(omp_get_thread_num())];
    std::vector<float>&res = sc.res, &nextRes = sc.nextRes, &m = sc.m, &dist = sc.dist, &tmp = sc.tmp;
    std::vector<int32_t>&pathCodes = sc.pathCodes, &nextCodes = sc.nextCodes;
    std::vector<double>&pathErr = sc.pathErr, &nextErr = sc.nextErr;
    std::vector<std::pair<float, int32_t>>& top = sc.top;
    std::vector<Candidate>& cand = sc.cand;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t begin = t * tileVectors;
      const int vecs = static_cast<int>(std::min(tileVectors, n - begin));
      // Stage 0 starts from one path per vector: the vector itself.
      int paths = 1;
      for (int v = 0; v < vecs; ++v) {
        std::copy(x + (begin + v) * g, x + (begin + v + 1) * g,
                  res.begin() + static_cast<int64_t>(v) * B * g);
      }
      for (int k = 0; k < K; ++k) {
        // Search distances of every path's residual to every entry.
        const int rowsUsed = vecs * B;
        const int rowsPadded = static_cast<int>(roundUp(rowsUsed, cpu::kRowBlock));
        std::fill(m.begin(), m.begin() + static_cast<int64_t>(rowsPadded) * g, 0.0f);
        for (int v = 0; v < vecs; ++v) {
          for (int p = 0; p < paths; ++p) {
            const int64_t row = static_cast<int64_t>(v) * B + p;
            for (int d = 0; d < g; ++d) m[row * g + d] = -2.0f * res[row * g + d];
          }
        }
        cpu::distanceRows(m_isa, m.data(), rowsPadded, packed[static_cast<size_t>(k)], dist.data());
        const int nextPaths = std::min(B, paths * B);
        for (int v = 0; v < vecs; ++v) {
          int nc = 0;
          for (int p = 0; p < paths; ++p) {
            const int64_t row = static_cast<int64_t>(v) * B + p;
            const float* dr = dist.data() + row * padC;
            // The B smallest search distances of this path (lowest index among ties).
            int have = 0;
            for (int32_t i = 0; i < C; ++i) {
              const float dv = dr[i];
              if (have == B && !(dv < top[static_cast<size_t>(B - 1)].first)) continue;
              int pos = have < B ? have++ : B - 1;
              while (pos > 0 && dv < top[static_cast<size_t>(pos - 1)].first) {
                top[static_cast<size_t>(pos)] = top[static_cast<size_t>(pos - 1)];
                --pos;
              }
              top[static_cast<size_t>(pos)] = {dv, i};
            }
            // Exact residual energy of each extension.
            for (int j = 0; j < have; ++j) {
              const int32_t e = top[static_cast<size_t>(j)].second;
              std::copy(res.begin() + row * g, res.begin() + (row + 1) * g, tmp.begin());
              cand[static_cast<size_t>(nc++)] = {subtractAndEnergy(tmp.data(), books.entry(k, e), g), p, e};
            }
          }
          // Keep the best extensions: by energy, then path, then entry (deterministic).
          std::partial_sort(cand.begin(), cand.begin() + nextPaths, cand.begin() + nc,
                            [](const Candidate& a, const Candidate& b) {
                              if (a.energy != b.energy) return a.energy < b.energy;
                              if (a.path != b.path) return a.path < b.path;
                              return a.entry < b.entry;
                            });
          for (int q = 0; q < nextPaths; ++q) {
            const Candidate& c = cand[static_cast<size_t>(q)];
            const int64_t src = static_cast<int64_t>(v) * B + c.path;
            const int64_t dst = static_cast<int64_t>(v) * B + q;
            float* rd = nextRes.data() + dst * g;
            std::copy(res.begin() + src * g, res.begin() + (src + 1) * g, rd);
            subtractAndEnergy(rd, books.entry(k, c.entry), g);
            std::copy(pathCodes.begin() + src * K, pathCodes.begin() + src * K + k,
                      nextCodes.begin() + dst * K);
            std::copy(pathErr.begin() + src * K, pathErr.begin() + src * K + k, nextErr.begin() + dst * K);
            nextCodes[static_cast<size_t>(dst * K + k)] = c.entry;
            nextErr[static_cast<size_t>(dst * K + k)] = c.energy;
          }
        }
        std::swap(res, nextRes);
        std::swap(pathCodes, nextCodes);
        std::swap(pathErr, nextErr);
        paths = nextPaths;
      }
      // Path 0 of each vector is its best.
      for (int v = 0; v < vecs; ++v) {
        const int64_t row = static_cast<int64_t>(v) * B;
        std::copy(pathCodes.begin() + row * K, pathCodes.begin() + (row + 1) * K, codes + (begin + v) * K);
        if (residual != nullptr) {
          std::copy(res.begin() + row * g, res.begin() + (row + 1) * g, residual + (begin + v) * g);
        }
        if (depthError != nullptr) {
          for (int k = 0; k < K; ++k)
            tileError[static_cast<size_t>(t * K + k)] += pathErr[static_cast<size_t>(row * K + k)];
        }
      }
    }
  }
  if (depthError != nullptr) {
    for (int64_t t = 0; t < tiles; ++t) {
      for (int k = 0; k < K; ++k) depthError[k] += tileError[static_cast<size_t>(t * K + k)];
    }
  }
}

void CpuBackend::accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                            double* sums) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = codes[i];
    if (c < 0 || c >= C) throwInternal("accumulate", "code " + std::to_string(c) + " out of range");
    counts[c] += 1.0;
    double* s = sums + static_cast<int64_t>(c) * g;
    const float* xi = x + i * g;
    for (int d = 0; d < g; ++d) s[d] += xi[d];
  }
}

}  // namespace

std::unique_ptr<Backend> makeCpuBackend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace kvq
