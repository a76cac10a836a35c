// What a quantizer does to attention (docs/metrics.md, "Attention"): exact causal
// softmax attention of chosen queries over every earlier key of their sequence,
// once with the exact keys and values and once per reconstruction, compared
// query by query.
//
// Work goes one kv head at a time, in blocks of queries (never a T x T matrix):
// per block, logits of the block's query rows against the keys of their sequence
// up to the block's last query, a softmax per row, the weighted sum of values,
// then the same for every variant and the comparison. Memory: the block buffers
// (AttentionSettings::blockFloats floats, four of them, per thread) and one packed
// copy of each variant's keys [T, D].
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "kvq/base/task.h"

namespace kvq {

// Where a key sits relative to the query reading it.
enum class KeyRegion {
  Sink = 0,    // the first token of the query's sequence (the "attention sink")
  Recent = 1,  // the recentWindow most recent keys (the query's own included), sink excluded
  Rest = 2     // everything between
};
inline constexpr int kKeyRegions = 3;
const char* keyRegionName(KeyRegion region);  // "sink", "recent", "rest"

// Raw sums over (query row, key) pairs of one region; ratios derive from them.
// p: exact attention weights, s: exact logits (scaled), ~ marks the variant's.
struct RegionSums {
  double mass = 0;               // sum p
  double recalledMass = 0;       // sum p over the keys among the top-k of p~
  double kl = 0;                 // sum p log(p / p~): the region's part of KL(p || p~)
  double logitErrorEnergy = 0;   // sum (s - s~)^2
  double logitEnergy = 0;        // sum s^2
  double outputErrorEnergy = 0;  // sum ||o_R - o~_R||^2 with o_R = sum_{j in R} p_j v_j
  int64_t keys = 0;              // (query row, key) pairs
  void merge(const RegionSums& other);
};

// Raw sums over query rows (one query at one query head) of one set.
struct AttentionSums {
  int64_t queries = 0;           // query rows measured
  int64_t keys = 0;              // (query row, key) pairs
  double outputErrorEnergy = 0;  // sum ||o - o~||^2, o = sum_j p_j v_j
  double outputEnergy = 0;       // sum ||o||^2
  double kl = 0;                 // sum KL(p || p~) in nats
  double logitErrorEnergy = 0;   // sum (s - s~)^2
  double logitEnergy = 0;        // sum s^2
  double recalledMass = 0;       // sum of p's mass on the top-k keys of p~
  std::array<RegionSums, kKeyRegions> regions;

  double outputRelativeError() const;  // outputErrorEnergy / outputEnergy (0 when both are 0)
  double meanKl() const;               // kl / queries, nats per query row
  double logitRelativeError() const;   // logitErrorEnergy / logitEnergy
  double massRecall() const;           // recalledMass / queries
  // Per region: output error of its contribution relative to the WHOLE output
  // energy; KL contribution per query row; logit error; recall within the region
  // (recalled / mass); the region's share of the exact attention (mass / queries).
  double regionOutputError(KeyRegion r) const;
  double regionMeanKl(KeyRegion r) const;
  double regionLogitError(KeyRegion r) const;
  double regionRecall(KeyRegion r) const;
  double regionMassShare(KeyRegion r) const;
  void merge(const AttentionSums& other);
};

struct AttentionSettings {
  double scale = 0;                        // softmax scale (1/sqrt(D) unless the dump says otherwise), > 0
  int topK = 32;                           // k of the mass recall, 1..256
  int recentWindow = 128;                  // size of the "recent" region and of KIVI's exact window, >= 1
  int64_t blockFloats = int64_t{1} << 20;  // floats per block buffer (query rows x keys)
};

// One quantizer's reconstruction of one kv head.
struct AttentionVariant {
  const float* keys = nullptr;    // [T, D] reconstructed keys, post-RoPE
  const float* values = nullptr;  // [T, D] reconstructed values
  // KIVI's full-precision window R = recentWindow, as KIVI decodes after appending the
  // query's token (m keys read): keys from floor(m/R)·R on (quantized R at a time) and
  // the last R values (a sliding window) read the EXACT keys and values; the others
  // read the reconstruction.
  bool exactWindow = false;
};

// The queries that read one kv head: G = H_q / H_kv query heads per query token.
struct AttentionQueries {
  const float* data = nullptr;              // [count, heads, D] post-RoPE
  int heads = 0;                            // G
  const int64_t* positions = nullptr;       // [count] token of each query, ascending
  const int64_t* sequenceStarts = nullptr;  // [count] first token of each query's sequence
  int64_t count = 0;
};

// Accumulates (+=) the comparison of every variant with the exact attention.
//   keys, values: [tokens, dim] exact post-RoPE keys and values of the kv head
//   sums: [variants.size()][queries.heads], resized when empty
// A query at token t reads keys sequenceStart..t. Deterministic for any number of
// threads (blocks are merged in order). Cancellation throws Error(Cancelled).
void accumulateAttention(const AttentionSettings& settings, int64_t tokens, int dim, const float* keys,
                         const float* values, const std::vector<AttentionVariant>& variants,
                         const AttentionQueries& queries, std::vector<std::vector<AttentionSums>>& sums,
                         const TaskControl* control = nullptr);

}  // namespace kvq
