// The data of the CPU/GPU parity tests, shared by the device tests (test_cuda_parity.cpp)
// and the host replays (test_kernel_replay.cpp), so that a replay's finding that a data
// set tells a defective kernel from the right one holds for the device test on that set.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"

namespace kvq::parity {

struct Case {
  std::string name;
  int64_t n = 0;
  std::vector<float> x;  // [n, g]
  Codebooks books;       // [K, C, g]
};

// Results of a greedy encode: what the parity tests compare.
struct Encoded {
  std::vector<int32_t> codes;      // [n, K]
  std::vector<float> residual;     // [n, g]
  std::vector<double> depthError;  // [K]
};

inline Encoded encode(Backend& backend, const float* x, int64_t n, const Codebooks& books) {
  Encoded r;
  r.codes.resize(static_cast<size_t>(n) * books.depth);
  r.residual.resize(static_cast<size_t>(n) * books.dim);
  r.depthError.assign(static_cast<size_t>(books.depth), 0.0);
  backend.encodeGreedy(x, n, books, r.codes.data(), r.depthError.data(), r.residual.data());
  return r;
}

// Equal bits, or both NaN (NaN payloads are not part of the contract).
template <typename T>
bool sameBits(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return false;
  }
  return true;
}

// Codes, residual bits and depth-error bits all equal.
inline bool identical(const Encoded& a, const Encoded& b) {
  return a.codes == b.codes && sameBits(a.residual, b.residual) && sameBits(a.depthError, b.depthError);
}

inline int64_t codesDiffering(const Encoded& a, const Encoded& b) {
  int64_t differ = 0;
  for (size_t i = 0; i < a.codes.size() && i < b.codes.size(); ++i)
    differ += a.codes[i] != b.codes[i] ? 1 : 0;
  return differ;
}

inline std::vector<float> gaussian(size_t count, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(count);
  for (float& v : out) v = scale * normal(rng);
  return out;
}

// EMA training state of C entries of g channels, as after an initialisation: a codebook ~ N(0, 1)
// (seed), counts 1, sums equal to the entries.
struct EmaState {
  std::vector<float> book;
  std::vector<double> count, sum;
};
inline EmaState emaStart(int C, int g, uint64_t seed) {
  EmaState s{
      gaussian(static_cast<size_t>(C) * g, seed), std::vector<double>(static_cast<size_t>(C), 1.0), {}};
  s.sum.assign(s.book.begin(), s.book.end());
  return s;
}

// One EMA step of backend on s (epsilon 1e-5). x: [n, g]; codes: [n] out.
inline void emaStep(Backend& backend, const std::vector<float>& x, int64_t n, int C, int g, double decay,
                    EmaState& s, int32_t* codes) {
  backend.emaStep(x.data(), n, s.book.data(), C, g, decay, 1e-5, s.count.data(), s.sum.data(), codes);
}

// The input of a statistics (accumulate) check: x, n vectors of g channels ~ N(0, 1) (seed), and
// a code below C for each, uniform (std::mt19937 seeded seed + 2).
struct Assignment {
  int64_t n;
  int g, C;
  std::vector<float> x;
  std::vector<int32_t> codes;
};
inline Assignment randomAssignment(int64_t n, int g, int C, uint64_t seed) {
  Assignment a{n, g, C, gaussian(static_cast<size_t>(n) * g, seed),
               std::vector<int32_t>(static_cast<size_t>(n))};
  std::mt19937 rng(static_cast<uint32_t>(seed + 2));
  for (auto& code : a.codes) code = static_cast<int32_t>(rng() % static_cast<uint32_t>(C));
  return a;
}

// Trained-like codebooks: stage k's entries are distinct residual vectors entering stage k
// (k-means' "points" initialisation), so near-ties are as common as in training.
inline Case residualCase(const std::string& name, int64_t n, int K, int C, int g, uint64_t seed,
                         Backend& cpu) {
  Case c{name, n, gaussian(static_cast<size_t>(n) * g, seed), Codebooks(K, C, g)};
  std::vector<float> residual = c.x;
  std::mt19937_64 rng(seed + 1);
  std::vector<int32_t> codes(static_cast<size_t>(n));
  for (int k = 0; k < K; ++k) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    std::shuffle(order.begin(), order.end(), rng);
    float* stage = c.books.stage(k);
    for (int e = 0; e < C; ++e) {
      const float* src = residual.data() + order[static_cast<size_t>(e % n)] * g;
      std::copy(src, src + g, stage + static_cast<int64_t>(e) * g);
    }
    cpu.nearest(residual.data(), n, stage, C, g, codes.data(), nullptr);
    for (int64_t i = 0; i < n; ++i) {
      for (int d = 0; d < g; ++d) residual[static_cast<size_t>(i * g + d)] -= stage[codes[i] * g + d];
    }
  }
  return c;
}

// The authors' benchmark data (bench_authors_kernel.py): x ~ N(0, 1), entries ~ N(0, 0.5^2).
inline Case gaussianCase(const std::string& name, int64_t n, int K, int C, int g, uint64_t seed) {
  Case c{name, n, gaussian(static_cast<size_t>(n) * g, seed), Codebooks(K, C, g)};
  c.books.data = gaussian(c.books.data.size(), seed + 1, 0.5f);
  return c;
}

// Exact ties: every entry of the second half repeats one of the first half, and entries
// 8..15 of each stage are copies of entry 7. The lowest index must win every tie.
inline Case duplicatesCase(int64_t n, int K, int C, int g, uint64_t seed, Backend& cpu) {
  Case c = residualCase("duplicates", n, K, C, g, seed, cpu);
  for (int k = 0; k < K; ++k) {
    float* stage = c.books.stage(k);
    for (int e = C / 2; e < C; ++e)
      std::copy(stage + (e - C / 2) * g, stage + (e - C / 2 + 1) * g, stage + e * g);
    for (int e = 8; e < 16 && e < C; ++e) std::copy(stage + 7 * g, stage + 8 * g, stage + e * g);
  }
  return c;
}

// Near ties: entry C/2 + i is entry i with every channel moved by one ulp up or down, so
// for vectors whose nearest entry is one of a pair, the pair's two distances differ by
// about their rounding error: a kernel that rounds in another order picks the other entry
// of a pair for a good share of them.
inline Case nearTiesCase(int64_t n, int K, int C, int g, uint64_t seed, Backend& cpu) {
  Case c = residualCase("near_ties", n, K, C, g, seed, cpu);
  std::mt19937_64 rng(seed + 2);
  for (int k = 0; k < K; ++k) {
    float* stage = c.books.stage(k);
    for (int e = C / 2; e < C; ++e) {
      for (int d = 0; d < g; ++d) {
        const float v = stage[(e - C / 2) * g + d];
        stage[e * g + d] = std::nextafter(v, (rng() & 1) != 0 ? 1e30f : -1e30f);
      }
    }
  }
  return c;
}

// Clusters finer than TF32 can see: 16 centres (residual vectors), each with C/16 members
// moved by relative noise of 2^-14, so a vector near a cluster has every member within
// the tensor-core candidate window: the kernel's candidate lists overflow and its exact
// search of every entry decides.
inline Case clusteredCase(int64_t n, int K, int C, int g, uint64_t seed, Backend& cpu) {
  Case c = residualCase("clusters", n, K, C, g, seed, cpu);
  std::mt19937_64 rng(seed + 3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int k = 0; k < K; ++k) {
    float* stage = c.books.stage(k);
    for (int e = 16; e < C; ++e) {
      for (int d = 0; d < g; ++d) {
        const float v = stage[(e % 16) * g + d];
        stage[e * g + d] = v * (1.0f + 0x1p-14f * normal(rng));
      }
    }
  }
  return c;
}

// Non-finite values: some vectors hold a NaN or an infinity, and one entry of stage 1 an
// infinity (that stage's tensor-core bound is then infinite: every vector is searched
// exactly). The CPU gives such vectors code 0 (no distance below +inf) and NaN residuals.
inline Case nonFiniteCase(int64_t n, int K, int C, int g, uint64_t seed, Backend& cpu) {
  Case c = residualCase("non_finite", n, K, C, g, seed, cpu);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t v : {int64_t{5}, int64_t{17}, int64_t{123}})
    c.x[static_cast<size_t>(v * g + 1)] = std::nanf("");
  c.x[static_cast<size_t>(40 * g)] = inf;
  c.x[static_cast<size_t>(41 * g + g - 1)] = -inf;
  if (K > 1) c.books.stage(1)[3 * g + 2] = inf;
  return c;
}

// Every case of the parity tests, as both the device tests and the replays use them:
// group sizes g = 3 and 8 (padded tensor-core k-steps), 32, and 128 (the exact kernel);
// C = 200 (not a multiple of the 64-entry chunk) and 256; then the tie, near-tie, cluster
// and non-finite cases.
constexpr int64_t kParityVectors = 3000;
inline std::vector<Case> parityCases(Backend& cpu) {
  const int64_t n = kParityVectors;
  std::vector<Case> cases;
  cases.push_back(residualCase("g3_C200", n, 4, 200, 3, 101, cpu));
  cases.push_back(residualCase("g8_C200", n, 4, 200, 8, 102, cpu));
  cases.push_back(residualCase("g32_C200", n, 4, 200, 32, 103, cpu));
  cases.push_back(residualCase("g32_C256", n, 4, 256, 32, 104, cpu));
  cases.push_back(residualCase("g128_C200", n, 3, 200, 128, 105, cpu));
  cases.push_back(duplicatesCase(n, 4, 256, 32, 7, cpu));
  cases.push_back(nearTiesCase(n, 4, 256, 32, 8, cpu));
  cases.push_back(clusteredCase(n, 3, 256, 32, 9, cpu));
  cases.push_back(nonFiniteCase(n, 3, 200, 32, 10, cpu));
  return cases;
}

inline const Case& caseNamed(const std::vector<Case>& cases, const std::string& name) {
  for (const Case& c : cases) {
    if (c.name == name) return c;
  }
  throw std::out_of_range("no parity case " + name);
}

}  // namespace kvq::parity
