// bench_cpu_vs_faiss: the CPU engine against FAISS 1.7.3's ResidualQuantizer on the
// same Gaussian data, in one run (docs/benchmarks.md).
//
//   (1) greedy encoding of the held-out set with IDENTICAL codebooks (ours, copied
//       into FAISS; FAISS max_beam_size = 1): time, and % of vectors whose codes agree;
//   (2) training: FAISS greedy training (max_beam_size = 1) against the engine's
//       training, held-out relative error of each encoded by its own encoder.
// Prints a markdown table. Sizes are options so that a quick run is possible.
#include <faiss/impl/ResidualQuantizer.h>
#include <faiss/utils/hamming.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/rvq/trainer.h"

namespace {

// k-means from random points (20 iterations), no EMA (8192-vector batches if asked for); no Lloyd
// and no reseeding, as RvqConfig's defaults.
kvq::RvqConfig benchTraining() {
  kvq::RvqConfig c;
  c.preset = "bench";
  c.kmeansIterations = 20;
  c.emaSteps = 0;
  c.batchSize = 8192;
  return c;
}

struct Options {
  int64_t train = 32768;
  int64_t encode = 65536;
  int dim = 32;
  int stages = 8;
  int bits = 11;
  int repeat = 3;
  bool faissTrain = true;
  uint64_t seed = 1234;
  int beam = 0;  // > 0: also compare beam-search encoding of this width
  // Our training settings for the comparison (docs/benchmarks.md says why); the shape, sample and
  // seed come from the fields above.
  kvq::RvqConfig training = benchTraining();
};

void usage() {
  std::puts(
      "bench_cpu_vs_faiss [--quick] [--train N] [--encode N] [--dim D] [--stages M] [--bits B]\n"
      "                   [--repeat R] [--no-faiss-train] [--seed S] [--beam B]\n"
      "                   [--kmeans-iterations I] [--ema-steps E] [--batch-size N] [--lloyd-iterations L]\n"
      "                   [--init points|kmeans++|progressive] [--dead-threshold T]\n"
      "defaults: the ANCHORS.md setting, d=32, 8 stages x 11 bits, 32768 training / 65536 encoded vectors");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      // 1/8 of the entries and of the training set (the same 16 vectors per entry):
      // FAISS trains in seconds instead of minutes.
      o.train = 4096;
      o.encode = 16384;
      o.bits = 8;
      o.repeat = 2;
      // At C = 256 the progressive-dimension k-means generalises best (docs/benchmarks.md).
      o.training.init = kvq::KMeansInit::Progressive;
      o.training.kmeansIterations = 5;
    } else if (a == "--train") {
      o.train = std::atoll(next());
    } else if (a == "--encode") {
      o.encode = std::atoll(next());
    } else if (a == "--dim") {
      o.dim = std::atoi(next());
    } else if (a == "--stages") {
      o.stages = std::atoi(next());
    } else if (a == "--bits") {
      o.bits = std::atoi(next());
    } else if (a == "--repeat") {
      o.repeat = std::max(1, std::atoi(next()));
    } else if (a == "--no-faiss-train") {
      o.faissTrain = false;
    } else if (a == "--seed") {
      o.seed = std::strtoull(next(), nullptr, 10);
    } else if (a == "--kmeans-iterations") {
      o.training.kmeansIterations = std::atoi(next());
    } else if (a == "--ema-steps") {
      o.training.emaSteps = std::atoi(next());
    } else if (a == "--batch-size") {
      o.training.batchSize = std::atoll(next());
    } else if (a == "--lloyd-iterations") {
      o.training.lloydIterations = std::atoi(next());
    } else if (a == "--beam") {
      o.beam = std::atoi(next());
    } else if (a == "--dead-threshold") {
      o.training.deadThreshold = std::atof(next());
    } else if (a == "--init") {
      try {
        o.training.init = kvq::parseKMeansInit(next());  // the engine's parser: the same names as kvq --init
      } catch (const kvq::Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        std::exit(2);
      }
    } else {
      usage();
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<float> gaussian(int64_t n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (float& v : x) v = nd(rng);
  return x;
}

double relativeError(const std::vector<float>& x, const std::vector<float>& rec) {
  double err = 0, total = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = static_cast<double>(x[i]) - rec[i];
    err += e * e;
    total += static_cast<double>(x[i]) * x[i];
  }
  return err / total;
}

// FAISS's packed codes -> [n, M] int32.
std::vector<int32_t> unpack(const faiss::ResidualQuantizer& rq, const std::vector<uint8_t>& packed,
                            int64_t n) {
  std::vector<int32_t> codes(static_cast<size_t>(n) * rq.M);
  for (int64_t i = 0; i < n; ++i) {
    faiss::BitstringReader reader(packed.data() + i * rq.code_size, rq.code_size);
    for (size_t m = 0; m < rq.M; ++m)
      codes[i * rq.M + m] = static_cast<int32_t>(reader.read(static_cast<int>(rq.nbits[m])));
  }
  return codes;
}

template <typename F>
double bestOf(int repeat, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int C = 1 << o.bits;
  const int d = o.dim;
  const int M = o.stages;
  std::printf(
      "bench_cpu_vs_faiss: d=%d, %d stages x %d bits (C=%d), %lld training / %lld encoded vectors, "
      "%d OpenMP threads\n",
      d, M, o.bits, C, static_cast<long long>(o.train), static_cast<long long>(o.encode),
      omp_get_max_threads());
  const std::vector<float> train = gaussian(o.train, d, o.seed);
  const std::vector<float> test = gaussian(o.encode, d, o.seed + 1);
  auto backend = kvq::makeCpuBackend();
  std::printf("engine backend: %s\n", backend->name().c_str());

  // ---- our training ---------------------------------------------------------------
  kvq::RvqConfig config = o.training;
  config.codebookSize = C;
  config.depth = M;
  config.groupSize = d;
  config.trainSample = o.train;
  config.seed = o.seed;
  kvq::TrainStats stats;
  const double t0 = now();
  const kvq::Codebooks books = kvq::trainRvq(train.data(), o.train, d, config, *backend, nullptr, &stats);
  const double oursTrain = now() - t0;
  std::printf("ours: trained in %.2f s (k-means %d iterations, EMA %d steps of %lld, Lloyd %d, init %s)\n",
              oursTrain, config.kmeansIterations, config.emaSteps, static_cast<long long>(config.batchSize),
              config.lloydIterations, kvq::kmeansInitName(config.init));

  // ---- (1) greedy encoding with identical codebooks ----------------------------------
  faiss::ResidualQuantizer same(static_cast<size_t>(d), static_cast<size_t>(M), static_cast<size_t>(o.bits));
  same.max_beam_size = 1;
  same.codebooks = books.data;  // both [M, C, d] row-major
  same.is_trained = true;
  std::vector<uint8_t> packed(static_cast<size_t>(o.encode) * same.code_size);
  const double faissEncode = bestOf(
      o.repeat, [&] { same.compute_codes(test.data(), packed.data(), static_cast<size_t>(o.encode)); });
  const std::vector<int32_t> faissCodes = unpack(same, packed, o.encode);

  std::vector<int32_t> codes(static_cast<size_t>(o.encode) * M);
  const double oursEncode = bestOf(
      o.repeat, [&] { backend->encodeGreedy(test.data(), o.encode, books, codes.data(), nullptr, nullptr); });
  int64_t identical = 0, firstDiffStage = 0;
  for (int64_t i = 0; i < o.encode; ++i) {
    const bool same_ =
        std::equal(codes.begin() + i * M, codes.begin() + (i + 1) * M, faissCodes.begin() + i * M);
    identical += same_ ? 1 : 0;
    if (!same_) firstDiffStage++;
  }
  std::vector<float> rec(test.size());
  kvq::decodeRvq(codes.data(), o.encode, books, M, rec.data());
  const double oursError = relativeError(test, rec);
  std::vector<float> recFaissSame(test.size());
  same.decode(packed.data(), recFaissSame.data(), static_cast<size_t>(o.encode));
  const double faissSameError = relativeError(test, recFaissSame);

  // ---- (1b) beam search with identical codebooks (optional) ---------------------------
  double faissBeam = 0, oursBeam = 0, faissBeamError = 0, oursBeamError = 0;
  int64_t beamIdentical = 0;
  if (o.beam > 0) {
    same.max_beam_size = o.beam;
    faissBeam =
        bestOf(1, [&] { same.compute_codes(test.data(), packed.data(), static_cast<size_t>(o.encode)); });
    const std::vector<int32_t> faissBeamCodes = unpack(same, packed, o.encode);
    same.decode(packed.data(), recFaissSame.data(), static_cast<size_t>(o.encode));
    faissBeamError = relativeError(test, recFaissSame);
    std::vector<int32_t> beamCodes(codes.size());
    oursBeam = bestOf(1, [&] {
      backend->encodeBeam(test.data(), o.encode, books, o.beam, beamCodes.data(), nullptr, nullptr);
    });
    for (int64_t i = 0; i < o.encode; ++i) {
      beamIdentical += std::equal(beamCodes.begin() + i * M, beamCodes.begin() + (i + 1) * M,
                                  faissBeamCodes.begin() + i * M)
                           ? 1
                           : 0;
    }
    kvq::decodeRvq(beamCodes.data(), o.encode, books, M, rec.data());
    oursBeamError = relativeError(test, rec);
  }

  // ---- (2) FAISS greedy training ------------------------------------------------------
  double faissTrain = 0, faissEncodeOwn = 0, faissError = 0;
  if (o.faissTrain) {
    faiss::ResidualQuantizer rq(static_cast<size_t>(d), static_cast<size_t>(M), static_cast<size_t>(o.bits));
    rq.max_beam_size = 1;
    const double f0 = now();
    rq.train(static_cast<size_t>(o.train), train.data());
    faissTrain = now() - f0;
    std::vector<uint8_t> own(static_cast<size_t>(o.encode) * rq.code_size);
    faissEncodeOwn =
        bestOf(1, [&] { rq.compute_codes(test.data(), own.data(), static_cast<size_t>(o.encode)); });
    std::vector<float> recOwn(test.size());
    rq.decode(own.data(), recOwn.data(), static_cast<size_t>(o.encode));
    faissError = relativeError(test, recOwn);
    std::printf("faiss: trained in %.2f s\n", faissTrain);
  }

  const double pct = 100.0 * static_cast<double>(identical) / static_cast<double>(o.encode);
  std::printf("\n| measure | FAISS 1.7.3 ResidualQuantizer | KVQ CPU engine | FAISS / KVQ |\n");
  std::printf("|---|---|---|---|\n");
  std::printf(
      "| greedy encode of %lld vectors, identical codebooks (best of %d) | %.3f s | %.3f s | %.1fx |\n",
      static_cast<long long>(o.encode), o.repeat, faissEncode, oursEncode, faissEncode / oursEncode);
  std::printf("| vectors with identical codes (all %d stages) | | %.4f %% (%lld differ) | |\n", M, pct,
              static_cast<long long>(o.encode - identical));
  std::printf("| held-out relative error, identical codebooks | %.5f | %.5f | |\n", faissSameError,
              oursError);
  if (o.beam > 0) {
    std::printf("| beam-%d encode, identical codebooks | %.3f s | %.3f s | %.1fx |\n", o.beam, faissBeam,
                oursBeam, faissBeam / oursBeam);
    std::printf("| vectors with identical beam-%d codes | | %.4f %% (%lld differ) | |\n", o.beam,
                100.0 * static_cast<double>(beamIdentical) / static_cast<double>(o.encode),
                static_cast<long long>(o.encode - beamIdentical));
    std::printf("| held-out relative error, beam %d, identical codebooks | %.5f | %.5f | |\n", o.beam,
                faissBeamError, oursBeamError);
  }
  if (o.faissTrain) {
    std::printf("| training on %lld vectors (greedy) | %.2f s | %.2f s | %.1fx |\n",
                static_cast<long long>(o.train), faissTrain, oursTrain, faissTrain / oursTrain);
    std::printf(
        "| held-out relative error, own training + own greedy encoder | %.5f | %.5f | %.3f (KVQ/FAISS) |\n",
        faissError, oursError, oursError / faissError);
    std::printf("| greedy encode with own codebooks | %.3f s | %.3f s | |\n", faissEncodeOwn, oursEncode);
  }
  return 0;
}
