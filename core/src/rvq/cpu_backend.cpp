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

// ---- beam search ----------------------------------------------------------------
// A tile of vectors is searched together: every vector keeps B partial paths, one
// row each (row v*B + p), so a stage's search distances of all paths of the tile are
// one distance block against the stage's codebook.

// One extension of a path: the exact |residual|^2 after taking `entry` at this stage.
struct BeamCandidate {
  double energy;
  int path;  // index of the extended path within its vector's beam
  int32_t entry;
};

// Scratch of one thread's tile; rows are paths (maxRows = tile vectors x B, padded).
struct BeamScratch {
  std::vector<float> res, nextRes;             // [rows, g] residual of each path
  std::vector<float> m, dist, tmp;             // [rows, g] -2 x residual; [rows, padC] distances; [g]
  std::vector<int32_t> pathCodes, nextCodes;   // [rows, K] codes of each path
  std::vector<double> pathErr, nextErr;        // [rows, K] |residual|^2 after each stage
  std::vector<std::pair<float, int32_t>> top;  // [B] one path's nearest entries
  std::vector<BeamCandidate> cand;             // [B*B] one vector's extensions

  void allocate(size_t maxRows, int g, int padC, int K, int B) {
    for (std::vector<float>* v : {&res, &nextRes, &m}) v->resize(maxRows * g);
    dist.resize(maxRows * static_cast<size_t>(padC));
    tmp.resize(static_cast<size_t>(g));
    for (std::vector<int32_t>* v : {&pathCodes, &nextCodes}) v->resize(maxRows * K);
    for (std::vector<double>* v : {&pathErr, &nextErr}) v->resize(maxRows * K);
    top.resize(static_cast<size_t>(B));
    cand.resize(static_cast<size_t>(B) * B);
  }
};

// The B smallest of C search distances dr (lowest index among ties), ascending, into
// top; returns how many were found (min(B, C)).
int smallestEntries(const float* dr, int C, int B, std::pair<float, int32_t>* top) {
  int have = 0;
  for (int32_t i = 0; i < C; ++i) {
    const float dv = dr[i];
    if (have == B && !(dv < top[B - 1].first)) continue;
    int pos = have < B ? have++ : B - 1;
    while (pos > 0 && dv < top[pos - 1].first) {
      top[pos] = top[pos - 1];
      --pos;
    }
    top[pos] = {dv, i};
  }
  return have;
}

// Beam-search encoding of the vectors of one tile through every stage. The stage
// step is FAISS's beam_search_encode_step: extend each of a vector's paths by its B
// nearest entries (search distances), rank the extensions by exact residual energy,
// keep the best B.
class BeamSearch {
 public:
  BeamSearch(cpu::Isa isa, const std::vector<cpu::PackedCodebook>& packed, const Codebooks& books, int B)
      : m_isa(isa),
        m_packed(packed),
        m_books(books),
        m_b(B),
        m_k(books.depth),
        m_c(books.size),
        m_g(books.dim),
        m_padC(packed.empty() ? books.size : packed[0].padded) {}

  // Encodes x rows [begin, begin + vecs): codes [n, K] and residual [n, g] (nullable)
  // of each vector's best path; its |residual|^2 per stage added to tileError [K] (nullable).
  void encodeTile(const float* x, int64_t begin, int vecs, BeamScratch& s, int32_t* codes, float* residual,
                  double* tileError) const {
    int paths = 1;  // stage 0 starts from one path per vector: the vector itself
    for (int v = 0; v < vecs; ++v) {
      std::copy(x + (begin + v) * m_g, x + (begin + v + 1) * m_g, s.res.begin() + row(v, 0) * m_g);
    }
    for (int k = 0; k < m_k; ++k) paths = step(k, vecs, paths, s);
    // Path 0 of each vector is its best.
    for (int v = 0; v < vecs; ++v) {
      const int64_t r = row(v, 0);
      std::copy(s.pathCodes.begin() + r * m_k, s.pathCodes.begin() + (r + 1) * m_k,
                codes + (begin + v) * m_k);
      if (residual != nullptr) {
        std::copy(s.res.begin() + r * m_g, s.res.begin() + (r + 1) * m_g, residual + (begin + v) * m_g);
      }
      if (tileError != nullptr) {
        for (int k = 0; k < m_k; ++k) tileError[k] += s.pathErr[static_cast<size_t>(r * m_k + k)];
      }
    }
  }

 private:
  int64_t row(int v, int p) const { return static_cast<int64_t>(v) * m_b + p; }

  // Stage k: `paths` paths per vector in (res, pathCodes, pathErr) become
  // min(B, paths x B) paths in the same arrays. Returns the new path count.
  int step(int k, int vecs, int paths, BeamScratch& s) const {
    searchDistances(k, vecs, paths, s);
    const int nextPaths = std::min(m_b, paths * m_b);
    for (int v = 0; v < vecs; ++v) {
      const int candidates = extendPaths(k, v, paths, s);
      keepBest(k, v, candidates, nextPaths, s);
    }
    std::swap(s.res, s.nextRes);
    std::swap(s.pathCodes, s.nextCodes);
    std::swap(s.pathErr, s.nextErr);
    return nextPaths;
  }

  // dist[row, i] = |c_i|^2 - 2 <res_row, c_i> for every path row and entry of stage k
  // (rows of unused paths are zero and ignored).
  void searchDistances(int k, int vecs, int paths, BeamScratch& s) const {
    const int rowsPadded = static_cast<int>(roundUp(vecs * m_b, cpu::kRowBlock));
    std::fill(s.m.begin(), s.m.begin() + static_cast<int64_t>(rowsPadded) * m_g, 0.0f);
    for (int v = 0; v < vecs; ++v) {
      for (int p = 0; p < paths; ++p) {
        const int64_t r = row(v, p);
        for (int d = 0; d < m_g; ++d) s.m[r * m_g + d] = -2.0f * s.res[r * m_g + d];
      }
    }
    cpu::distanceRows(m_isa, s.m.data(), rowsPadded, m_packed[static_cast<size_t>(k)], s.dist.data());
  }

  // The candidates of vector v: each path's B nearest entries with the exact residual
  // energy of taking them. Returns how many (into s.cand).
  int extendPaths(int k, int v, int paths, BeamScratch& s) const {
    int nc = 0;
    for (int p = 0; p < paths; ++p) {
      const int64_t r = row(v, p);
      const int have = smallestEntries(s.dist.data() + r * m_padC, m_c, m_b, s.top.data());
      for (int j = 0; j < have; ++j) {
        const int32_t e = s.top[static_cast<size_t>(j)].second;
        std::copy(s.res.begin() + r * m_g, s.res.begin() + (r + 1) * m_g, s.tmp.begin());
        s.cand[static_cast<size_t>(nc++)] = {subtractAndEnergy(s.tmp.data(), m_books.entry(k, e), m_g), p, e};
      }
    }
    return nc;
  }

  // Keeps vector v's best nextPaths candidates — by energy, then path, then entry
  // (deterministic) — as its paths of the next stage (in nextRes, nextCodes, nextErr).
  void keepBest(int k, int v, int candidates, int nextPaths, BeamScratch& s) const {
    std::partial_sort(s.cand.begin(), s.cand.begin() + nextPaths, s.cand.begin() + candidates,
                      [](const BeamCandidate& a, const BeamCandidate& b) {
                        if (a.energy != b.energy) return a.energy < b.energy;
                        if (a.path != b.path) return a.path < b.path;
                        return a.entry < b.entry;
                      });
    for (int q = 0; q < nextPaths; ++q) {
      const BeamCandidate& c = s.cand[static_cast<size_t>(q)];
      const int64_t src = row(v, c.path);
      const int64_t dst = row(v, q);
      float* rd = s.nextRes.data() + dst * m_g;
      std::copy(s.res.begin() + src * m_g, s.res.begin() + (src + 1) * m_g, rd);
      subtractAndEnergy(rd, m_books.entry(k, c.entry), m_g);
      std::copy(s.pathCodes.begin() + src * m_k, s.pathCodes.begin() + src * m_k + k,
                s.nextCodes.begin() + dst * m_k);
      std::copy(s.pathErr.begin() + src * m_k, s.pathErr.begin() + src * m_k + k,
                s.nextErr.begin() + dst * m_k);
      s.nextCodes[static_cast<size_t>(dst * m_k + k)] = c.entry;
      s.nextErr[static_cast<size_t>(dst * m_k + k)] = c.energy;
    }
  }

  cpu::Isa m_isa;
  const std::vector<cpu::PackedCodebook>& m_packed;
  const Codebooks& m_books;
  int m_b, m_k, m_c, m_g, m_padC;
};

void CpuBackend::encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                            double* depthError, float* residual) {
  if (n <= 0) return;
  if (beam < 1) throwInternal("encodeBeam", "beam width must be at least 1");
  const int K = books.depth;
  const int B = std::min(beam, books.size);
  const std::vector<cpu::PackedCodebook> packed = packAll(books);
  const BeamSearch search(m_isa, packed, books, B);
  const int padC = packed.empty() ? books.size : packed[0].padded;
  // Vectors per tile: about 256 path rows, and the tile's [rows, padded C] distance block
  // within 16 MB (2 MB at C = 2048) unless a single vector's paths need more.
  const int64_t rowBudget =
      std::min<int64_t>(256, std::max<int64_t>(cpu::kRowBlock, (int64_t{1} << 22) / padC));
  const int64_t tileVectors = std::max<int64_t>(1, rowBudget / B);
  const int64_t tiles = (n + tileVectors - 1) / tileVectors;
  // Per-tile partial sums, merged in tile order below: thread-count independent.
  std::vector<double> tileError(depthError != nullptr ? static_cast<size_t>(tiles * K) : 0, 0.0);
  // Scratch per thread allocated outside the region (bad_alloc there would terminate).
  const int threads = threadCount();
  std::vector<BeamScratch> scratch(static_cast<size_t>(threads));
  for (BeamScratch& sc : scratch) {
    sc.allocate(static_cast<size_t>(roundUp(tileVectors * B, cpu::kRowBlock)), books.dim, padC, K, B);
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t begin = t * tileVectors;
    search.encodeTile(x, begin, static_cast<int>(std::min(tileVectors, n - begin)),
                      scratch[static_cast<size_t>(omp_get_thread_num())], codes, residual,
                      depthError != nullptr ? tileError.data() + t * K : nullptr);
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
