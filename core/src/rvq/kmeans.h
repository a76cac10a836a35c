// Internal: seeded randomness and k-means initialisation of the trainer.
//
// All randomness of training comes from std::mt19937_64 engines seeded from
// (config.seed, stage, purpose) through splitmix64, and is drawn sequentially on
// one thread, so a seed gives the same codebooks on any machine and thread count.
// Draws avoid the standard distributions, whose algorithms are implementation-defined.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "kvq/rvq/backend.h"
#include "kvq/rvq/rvq_config.h"

namespace kvq::detail {

std::mt19937_64 seededEngine(uint64_t seed, uint64_t stage, uint64_t purpose);
// Uniform integer in [0, n) (n >= 1), by rejection: unbiased.
uint64_t uniformIndex(std::mt19937_64& rng, uint64_t n);
// Uniform double in [0, 1) with 53 random bits.
double uniform01(std::mt19937_64& rng);
// `count` distinct indices of [0, n) in random order (partial Fisher-Yates). count <= n.
std::vector<int64_t> distinctIndices(std::mt19937_64& rng, int64_t n, int64_t count);

// Initial k-means centres on x: [n, g] (n >= C):
//   RandomPoints: C distinct random vectors of x (scipy kmeans2 minit="points");
//   PlusPlus: k-means++ (first centre uniform, then each with probability
//   proportional to the squared distance to the nearest centre chosen so far).
// centres: [C, g] out.
void initCentres(const float* x, int64_t n, int g, int C, KMeansInit init, std::mt19937_64& rng,
                 float* centres);

// Progressive-dimension k-means (as FAISS's ProgressiveDimClustering): x is rotated
// onto its principal axes; k-means runs on the first d_1 < d_2 < ... < g axes in turn
// (d_s = round-down of g^(s/steps)), each run starting from the previous centres with
// zeros in the new axes and the first from C distinct random points; `iterations` Lloyd
// iterations per run, empty clusters split. centres: [C, g] out, in x's coordinates.
// Returns the number of empty clusters split.
int progressiveKmeans(const float* x, int64_t n, int g, int C, int iterations, int steps,
                      std::mt19937_64& rng, Backend& backend, float* centres);

// Gives each empty cluster (counts[i] == 0) half of a populated one, chosen with
// probability proportional to its count - 1: the two centres are the populated one
// scaled by 1 +- 1/1024 in alternating channels, so the next assignment separates
// them. centres: [C, g] in/out; counts: [C] in/out (split as the halves will be).
// Returns the number of clusters split.
int splitEmptyClusters(float* centres, double* counts, int C, int g, std::mt19937_64& rng);

}  // namespace kvq::detail
