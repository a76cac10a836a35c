// bench_attention: the attention metrics' speed (docs/benchmarks.md, "Attention").
//
//   (1) a long synthetic layer: T = 32768 tokens in one sequence, 32 query heads,
//       8 kv heads, head_dim 128, 1024 query tokens stratified over the held-out
//       last quarter (the defaults of kvq attention), exact attention over all
//       their keys: the reference and one quantizer, then the reference and the
//       seven methods of a default study (RVQ, KIVI-2/3/4, each KIVI with its window);
//   (2) one layer of the bundled sample (or --sample FILE), 1024 held-out queries x
//       9 heads: the attention arithmetic alone for the seven methods (KIVI
//       reconstructions and a noisy stand-in for RVQ, prepared outside the timer),
//       and measureAttention end to end with KIVI-2/3/4 (reading, RoPE, KIVI, all).
// The reconstructions of (1) are the exact keys and values plus noise: the cost of
// the metrics does not depend on which quantizer made them. Prints a markdown table.
#include <omp.h>

#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kvq/attention/attention_metrics.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/study/attention_study.h"
#include "kvq/study/quantize_study.h"
#include "kvq/study/scalar_baseline.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds of the whole process (every thread): on a shared machine the wall time
// measures the other users as well; CPU / threads is the wall time of an idle machine.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Wall and CPU seconds of f().
template <typename F>
std::pair<double, double> timed(F&& f) {
  const auto start = Clock::now();
  const double cpu0 = cpuSeconds();
  f();
  return {seconds(start), cpuSeconds() - cpu0};
}

void printRow(const std::string& data, const std::string& what, const std::string& heads, double wall,
              double cpu) {
  std::printf("| %s | %s | %s | %.2f s | %.2f s | %.2f s |\n", data.c_str(), what.c_str(), heads.c_str(),
              wall, cpu, cpu / omp_get_max_threads());
}

std::vector<float> gaussian(size_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<float> x(n);
  for (float& e : x) e = g(rng);
  return x;
}

// One kv head's worth of a long layer: [T, D] keys and values, [n, G, D] queries.
struct LongHead {
  std::vector<float> keys, values, queries;
  std::vector<std::vector<float>> noisyKeys, noisyValues;  // one per distinct reconstruction
};

void benchLong(int kvHeads, int methods) {
  constexpr int64_t T = 32768;
  constexpr int D = 128, G = 4, kQueries = 1024;
  std::mt19937_64 rng(7);
  std::vector<int64_t> positions, starts(kQueries, 0);
  for (int i = 0; i < kQueries; ++i) {  // one per stratum of the last quarter
    std::uniform_int_distribution<int64_t> pick(0, 7);
    positions.push_back(T * 3 / 4 + 8 * i + pick(rng));
  }
  kvq::AttentionSettings s;
  s.scale = 1.0 / std::sqrt(static_cast<double>(D));
  double total = 0, cpu = 0;
  for (int h = 0; h < kvHeads; ++h) {
    LongHead head;
    head.keys = gaussian(static_cast<size_t>(T * D), 1.0f, rng);
    for (int64_t t = 0; t < T; ++t) head.keys[t * D] += 4.0f;  // uneven attention
    head.values = gaussian(static_cast<size_t>(T * D), 1.0f, rng);
    head.queries = gaussian(static_cast<size_t>(kQueries * G * D), 1.0f, rng);
    // RVQ + three KIVI: four distinct reconstructions; each KIVI also with its window.
    const int distinct = methods == 1 ? 1 : 4;
    std::vector<kvq::AttentionVariant> variants;
    for (int v = 0; v < distinct; ++v) {
      std::vector<float> kn = head.keys, vn = head.values;
      const std::vector<float> e = gaussian(kn.size(), 0.05f, rng);
      for (size_t i = 0; i < kn.size(); ++i) kn[i] += e[i], vn[i] -= e[i];
      head.noisyKeys.push_back(std::move(kn));
      head.noisyValues.push_back(std::move(vn));
    }
    for (int v = 0; v < distinct; ++v) {
      variants.push_back({head.noisyKeys[v].data(), head.noisyValues[v].data(), false});
      if (v > 0) variants.push_back({head.noisyKeys[v].data(), head.noisyValues[v].data(), true});
    }
    const kvq::AttentionQueries q{head.queries.data(), G, positions.data(), starts.data(), kQueries};
    std::vector<std::vector<kvq::AttentionSums>> sums;
    const auto [wall, used] = timed(
        [&] { kvq::accumulateAttention(s, T, D, head.keys.data(), head.values.data(), variants, q, sums); });
    total += wall;
    cpu += used;
  }
  const double scale = 8.0 / kvHeads;  // per layer of 8 kv heads
  printRow("32768 tokens, 32 q / 8 kv heads, D = 128, 1024 queries",
           "reference + " + std::to_string(methods) + (methods == 1 ? " method" : " methods"),
           std::to_string(kvHeads) + " of 8 (scaled to 8)", total * scale, cpu * scale);
}

void benchSample(const std::string& path, int layer) {
  const auto reader = kvq::DumpReader::open(path);
  const kvq::DumpInfo& info = reader->info();
  if (!reader->has(layer, kvq::Kind::Queries)) {
    std::printf("| sample layer %d | (the dump has no queries) | | | | |\n", layer);
    return;
  }
  auto backend = kvq::makeCpuBackend();
  kvq::StudyOptions so;
  so.config.heldOutFraction = 0.25;
  kvq::AttentionOptions ao;
  // End to end: reading, RoPE, KIVI-2/3/4 reconstructions, attention with and without windows.
  const auto [endWall, endCpu] =
      timed([&] { kvq::measureAttention(*reader, {layer}, {}, so, ao, *backend); });
  // The arithmetic alone: the same seven variants per kv head, prepared outside the timer.
  const int H = info.numKvHeads, G = info.numQHeads / H, D = info.headDim;
  const kvq::TokenSplit split = kvq::splitTokens(info.tokens, info.sequenceStarts, 0.25);
  const std::vector<int64_t> tokens = kvq::sampleQueryTokens(info, split, 1024, 1);
  std::vector<int64_t> starts;
  for (int64_t t : tokens) starts.push_back(t >= info.sequenceStarts.back() ? info.sequenceStarts.back() : 0);
  const kvq::Slab keys = reader->read(layer, kvq::Kind::Keys),
                  values = reader->read(layer, kvq::Kind::Values);
  std::mt19937_64 rng(3);
  double arithmetic = 0, arithmeticCpu = 0;
  for (int h = 0; h < H; ++h) {
    std::vector<float> k(static_cast<size_t>(info.tokens * D)), v(k.size());
    for (int64_t t = 0; t < info.tokens; ++t) {
      std::memcpy(k.data() + t * D, keys.vector(t, h), D * sizeof(float));
      std::memcpy(v.data() + t * D, values.vector(t, h), D * sizeof(float));
    }
    std::vector<std::vector<float>> rk, rv;
    for (int b : {2, 3, 4}) {
      kvq::Slab in = kvq::Slab{0, info.tokens, 1, D, k}, out;
      kvq::kiviQuantizeKeys(in, {b, 32, 32}, out);
      rk.push_back(out.data);
      in.data = v;
      kvq::kiviQuantizeValues(in, {b, 32, 32}, out);
      rv.push_back(out.data);
    }
    std::vector<float> nk = k, nv = v;  // a stand-in for RVQ's reconstruction
    const std::vector<float> e = gaussian(nk.size(), 0.02f, rng);
    for (size_t i = 0; i < nk.size(); ++i) nk[i] += e[i], nv[i] -= e[i];
    std::vector<kvq::AttentionVariant> variants{{nk.data(), nv.data(), false}};
    for (size_t b = 0; b < rk.size(); ++b) {
      variants.push_back({rk[b].data(), rv[b].data(), false});
      variants.push_back({rk[b].data(), rv[b].data(), true});
    }
    const std::vector<float> q = gaussian(tokens.size() * G * D, 1.0f, rng);
    const kvq::AttentionQueries aq{q.data(), G, tokens.data(), starts.data(),
                                   static_cast<int64_t>(tokens.size())};
    kvq::AttentionSettings s;
    s.scale = 1.0 / std::sqrt(static_cast<double>(D));
    std::vector<std::vector<kvq::AttentionSums>> sums;
    const auto [wall, used] =
        timed([&] { kvq::accumulateAttention(s, info.tokens, D, k.data(), v.data(), variants, aq, sums); });
    arithmetic += wall;
    arithmeticCpu += used;
  }
  const std::string data = "sample layer " + std::to_string(layer) + ": " + std::to_string(info.tokens) +
                           " tokens, " + std::to_string(info.numQHeads) + " q / " + std::to_string(H) +
                           " kv heads, D = " + std::to_string(D) + ", " + std::to_string(tokens.size()) +
                           " queries";
  printRow(data, "reference + 7 methods (arithmetic only)", "all", arithmetic, arithmeticCpu);
  printRow(data, "measureAttention with KIVI-2/3/4, with and without window (end to end)", "all", endWall,
           endCpu);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string sample = KVQ_SAMPLE_DUMP;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--sample" && i + 1 < argc) sample = argv[++i];
  }
  std::printf("threads: %d\n\n", omp_get_max_threads());
  std::printf(
      "| data | what | kv heads timed | wall | CPU (all threads) | CPU / threads |\n"
      "|---|---|---|---|---|---|\n");
  benchSample(sample, 12);
  benchLong(quick ? 1 : 8, 1);
  benchLong(quick ? 1 : 2, 7);
  return 0;
}
