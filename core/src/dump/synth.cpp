// Synthetic KV dumps. The generator is our own (mt19937_64 + Box-Muller) rather
// than std::normal_distribution, whose output differs between standard libraries:
// the same seed must give the same bytes everywhere.
//
// Model per layer and head (D channels, pairs (i, i + D/2)):
//   keys    k_t = R(t) (mu + s * z_t) + o * (1 + 0.05 w_t)
//           R(t) rotates pair i by theta_i t, theta_i = 10000^(-2i/D) (rotary-like);
//           z_t is AR(1) noise (rho 0.9) so consecutive tokens correlate;
//           o is zero except 2-4 outlier channels of magnitude 5-20 (layer profile);
//           w_t is slow AR(1) noise (rho 0.99). The outlier offset is not rotated,
//           like the fixed massive channels of real keys.
//   values  v_t = a_t * u * n_t, n_t Gaussian, u per-channel scale (mild spread),
//           a_t a per-token scale shared by all heads.
#include "kvq/dump/synth.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kvq/base/error.h"
#include "kvq/dump/dump_writer.h"

namespace kvq {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRopeTheta = 10000.0;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Independent streams: one per (seed, layer, purpose).
enum Stream : uint64_t {
  kKeyPlan = 1,
  kKeyNoise,
  kValuePlan,
  kValueNoise,
  kQueryPlan,
  kQueryNoise,
  kTokenScale
};

class Rng {
 public:
  Rng(uint64_t seed, int layer, Stream stream)
      : m_engine(splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(layer)) ^ stream)) {}

  double uniform() { return static_cast<double>(m_engine() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (m_hasSpare) {
      m_hasSpare = false;
      return m_spare;
    }
    const double u1 = (static_cast<double>(m_engine() >> 11) + 0.5) * 0x1.0p-53;  // (0, 1): log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    m_spare = r * std::sin(2.0 * kPi * u2);
    m_hasSpare = true;
    return r * std::cos(2.0 * kPi * u2);
  }
  uint64_t below(uint64_t n) { return m_engine() % n; }  // tiny bias is irrelevant here

 private:
  std::mt19937_64 m_engine;
  bool m_hasSpare = false;
  double m_spare = 0;
};

void checkOptions(const SynthOptions& o, int layer) {
  auto bad = [](const std::string& problem) { throwBadInput("", "synth", problem); };
  if (o.layers <= 0 || o.kvHeads <= 0 || o.tokens <= 0) bad("layers, kvHeads and tokens must be positive");
  if (o.headDim < 2 || o.headDim % 2 != 0) bad("headDim must be even and at least 2 (rotary pairs)");
  if (layer < 0 || layer >= o.layers) bad("layer " + std::to_string(layer) + " is outside [0, layers)");
}

// Per-layer, per-head structure of keys (or queries): [H, D] arrays.
struct RotaryPlan {
  std::vector<std::vector<int>> outliers;  // per head, ascending
  std::vector<double> mean, scale, offset;
};

RotaryPlan planRotary(const SynthOptions& o, int layer, Stream stream) {
  const auto dim = static_cast<size_t>(o.headDim);
  Rng rng(o.seed, layer, stream);
  RotaryPlan plan;
  plan.mean.resize(static_cast<size_t>(o.kvHeads) * dim);
  plan.scale.resize(plan.mean.size());
  plan.offset.assign(plan.mean.size(), 0.0);
  // Outlier magnitude profile: 5x in the first/last layers, up to 15x mid-depth.
  const double profile = 5.0 + 10.0 * std::sin(kPi * (layer + 0.5) / o.layers);
  for (int h = 0; h < o.kvHeads; ++h) {
    const size_t base = static_cast<size_t>(h) * dim;
    for (size_t c = 0; c < dim; ++c) {
      plan.scale[base + c] = std::exp(0.3 * rng.normal());
      plan.mean[base + c] = 0.5 * rng.normal();
    }
    const int wanted = 2 + static_cast<int>(rng.below(3));
    const int count = std::max(1, std::min(wanted, o.headDim / 4));
    std::vector<int> channels(dim);
    std::iota(channels.begin(), channels.end(), 0);
    for (int i = 0; i < count; ++i) {  // partial Fisher-Yates: distinct channels
      const auto j = static_cast<size_t>(i) + rng.below(dim - static_cast<size_t>(i));
      std::swap(channels[static_cast<size_t>(i)], channels[j]);
    }
    channels.resize(static_cast<size_t>(count));
    std::sort(channels.begin(), channels.end());
    for (int c : channels) {
      const double magnitude = profile * (1.0 + rng.uniform() / 3.0);  // 5..20
      plan.offset[base + static_cast<size_t>(c)] = rng.uniform() < 0.5 ? -magnitude : magnitude;
    }
    plan.outliers.push_back(std::move(channels));
  }
  return plan;
}

void shapeSlab(const SynthOptions& o, Slab& slab) {
  slab.tokenBegin = 0;
  slab.tokens = o.tokens;
  slab.heads = o.kvHeads;
  slab.dim = o.headDim;
  slab.data.assign(
      static_cast<size_t>(o.tokens) * static_cast<size_t>(o.kvHeads) * static_cast<size_t>(o.headDim), 0.0f);
}

void generateRotary(const SynthOptions& o, int layer, Stream planStream, Stream noiseStream, Slab& out) {
  const RotaryPlan plan = planRotary(o, layer, planStream);
  shapeSlab(o, out);
  Rng rng(o.seed, layer, noiseStream);
  const auto dim = static_cast<size_t>(o.headDim);
  const size_t half = dim / 2;
  std::vector<double> theta(half);
  for (size_t i = 0; i < half; ++i)
    theta[i] = std::pow(kRopeTheta, -2.0 * static_cast<double>(i) / o.headDim);
  const double rho = 0.9, innovation = std::sqrt(1.0 - rho * rho);
  const double slowRho = 0.99, slowInnovation = std::sqrt(1.0 - slowRho * slowRho);
  std::vector<double> z(plan.mean.size());
  for (double& v : z) v = rng.normal();
  std::vector<double> slow(static_cast<size_t>(o.kvHeads), 0.0);
  std::vector<double> x(dim), cosines(half), sines(half);
  for (int64_t t = 0; t < o.tokens; ++t) {
    for (size_t i = 0; i < half; ++i) {  // shared by every head of this token
      const double angle = theta[i] * static_cast<double>(t);
      cosines[i] = std::cos(angle);
      sines[i] = std::sin(angle);
    }
    for (int h = 0; h < o.kvHeads; ++h) {
      const size_t base = static_cast<size_t>(h) * dim;
      double& w = slow[static_cast<size_t>(h)];
      w = slowRho * w + slowInnovation * rng.normal();
      for (size_t c = 0; c < dim; ++c) {
        double& zc = z[base + c];
        if (t > 0) zc = rho * zc + innovation * rng.normal();
        x[c] = plan.mean[base + c] + plan.scale[base + c] * zc;
      }
      float* k = out.vector(t, h);
      for (size_t i = 0; i < half; ++i) {
        const double cs = cosines[i], sn = sines[i];
        const double a = x[i], b = x[i + half];
        k[i] = static_cast<float>(a * cs - b * sn + plan.offset[base + i] * (1.0 + 0.05 * w));
        k[i + half] = static_cast<float>(a * sn + b * cs + plan.offset[base + i + half] * (1.0 + 0.05 * w));
      }
    }
  }
}

}  // namespace

void synthLayer(const SynthOptions& options, int layer, Slab& keys, Slab& values) {
  checkOptions(options, layer);
  generateRotary(options, layer, kKeyPlan, kKeyNoise, keys);

  shapeSlab(options, values);
  const auto dim = static_cast<size_t>(options.headDim);
  Rng plan(options.seed, layer, kValuePlan);
  std::vector<double> channelScale(static_cast<size_t>(options.kvHeads) * dim);
  for (double& s : channelScale) s = std::exp(0.15 * plan.normal());
  Rng tokenScale(options.seed, layer, kTokenScale);
  Rng noise(options.seed, layer, kValueNoise);
  for (int64_t t = 0; t < options.tokens; ++t) {
    const double a = std::exp(0.25 * tokenScale.normal());
    for (int h = 0; h < options.kvHeads; ++h) {
      float* v = values.vector(t, h);
      for (size_t c = 0; c < dim; ++c) {
        v[c] = static_cast<float>(a * channelScale[static_cast<size_t>(h) * dim + c] * noise.normal());
      }
    }
  }
}

void synthQueries(const SynthOptions& options, int layer, Slab& queries) {
  checkOptions(options, layer);
  generateRotary(options, layer, kQueryPlan, kQueryNoise, queries);
}

std::vector<int> synthKeyOutlierChannels(const SynthOptions& options, int layer, int head) {
  checkOptions(options, layer);
  if (head < 0 || head >= options.kvHeads) throwBadInput("", "synth", "head outside [0, kvHeads)");
  return planRotary(options, layer, kKeyPlan).outliers[static_cast<size_t>(head)];
}

void writeSynthDump(const std::string& path, const SynthOptions& options) {
  checkOptions(options, 0);
  DumpHeader header;
  header.model = "synthetic (kvq synth)";
  header.numLayers = options.layers;
  header.numKvHeads = options.kvHeads;
  header.headDim = options.headDim;
  header.numQHeads = options.queries ? options.kvHeads : 0;
  header.keyRope = "post";
  header.ropeTheta = kRopeTheta;
  header.ropeDim = options.headDim;
  header.source = "kvq synth generator v1, seed " + std::to_string(options.seed);
  header.dtype = options.dtype;
  header.tokens = options.tokens;
  auto writer = DumpWriter::create(path, header);
  Slab keys, values, queries;
  for (int layer = 0; layer < options.layers; ++layer) {
    synthLayer(options, layer, keys, values);
    if (options.queries) synthQueries(options, layer, queries);
    writer->writeLayer(layer, keys, values, options.queries ? &queries : nullptr);
  }
  writer->commit();
}

}  // namespace kvq
