// Attention metrics of a dump's layers under the quantizers of a study (docs/
// metrics.md, "Attention"): RVQ codebooks (trained here or read from a file) and
// the KIVI baselines, with and without KIVI's exact window of recent tokens.
//
// Per layer with queries: sample query tokens from the held-out tail of each
// sequence (stratified by position), read the layer's keys and values, rotate
// pre-RoPE keys and queries as the dump says, reconstruct every kv head with each
// quantizer (all T tokens: a query reads every earlier key), and compare exact
// causal attention with each reconstruction (kvq/attention/attention_metrics.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/attention/attention_metrics.h"
#include "kvq/base/task.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"
#include "kvq/rvq/rvq_config.h"

namespace kvq {

class DumpReader;
struct StudyOptions;
struct TokenSplit;

struct AttentionOptions {
  bool enabled = false;            // runStudy / evaluateCodebooks measure attention too
  int64_t queriesPerLayer = 1024;  // query tokens sampled per layer; 0 = every candidate
  int topK = 32;                   // k of the mass recall
  int recentWindow = 128;          // the "recent" region and KIVI's exact window
  bool kiviWindow = true;          // also measure KIVI-b with its exact window
  bool includeExact = false;       // also "exact", the identity: zero error; the reference's own numbers
  std::vector<int> rvqDepths;      // RVQ depths measured (1..K); empty: K only
};

// Throws Error(BadInput) naming the field ("attention_queries", ...; the CLI shows its flag).
void validateAttentionOptions(const AttentionOptions& options);

// One quantizer's attention error on one layer.
struct AttentionMethodResult {
  std::string method;                  // "rvq", "kivi" or "kivi-window"
  int depth = 0;                       // rvq: stages used
  int bits = 0;                        // kivi: b
  double bitsPerChannel = 0;           // mean over keys and values (16 for a kind left exact)
  AttentionSums total;                 // every query head
  std::vector<AttentionSums> perHead;  // [H_q]
};

struct LayerAttentionResult {
  int layer = 0;
  int64_t candidates = 0;   // held-out tokens with a stored query
  int64_t queryTokens = 0;  // sampled query tokens (rows = queryTokens * H_q)
  std::vector<AttentionMethodResult> methods;
  double seconds = 0;
};

// What one measurement of several layers used and found.
struct AttentionResult {
  AttentionOptions options;
  double scale = 0;                  // softmax scale used
  std::string rope;                  // "none (keys post-RoPE)" or "half, theta 100000, dim 64", ...
  std::vector<Kind> quantizedKinds;  // kinds replaced by reconstructions; the others stay exact
  std::vector<LayerAttentionResult> layers;

  // Sums of one method over every layer (zero queries when no layer has it);
  // depthOrBits: the rvq depth or the kivi bits.
  AttentionMethodResult total(const std::string& method, int depthOrBits) const;
};

// Measures every layer of `layers` that stores queries (layers without are
// skipped). sets: RVQ quantizers by layer and kind (empty: KIVI only); a kind in
// studyOptions.kinds without a set is left exact for RVQ. studyOptions supplies
// the held-out split (config.heldOutFraction), the config the sets were trained
// with, the KIVI bits and groups, and the seed of the query sampling. Throws
// Error(BadInput) when no selected layer stores queries, or when the dump has
// pre-RoPE keys but no rope_theta or /rope_inv_freq.
AttentionResult measureAttention(const DumpReader& reader, const std::vector<int>& layers,
                                 const std::vector<QuantizerSet>& sets, const StudyOptions& studyOptions,
                                 const AttentionOptions& options, Backend& backend,
                                 const TaskControl* control = nullptr);

// Throws Error(BadInput) naming the dump when attention cannot be measured on
// `layers`: none stores queries, H_q is not a multiple of H_kv, or the keys are
// pre-RoPE and the rotation is unknown.
void checkAttentionInputs(const DumpReader& reader, const std::vector<int>& layers);

// The query tokens one layer samples: candidates = held-out tokens (split) that
// have a stored query (info.queryPositions, or every token); with want > 0 and
// fewer than the candidates, one token drawn uniformly from each of `want`
// equal strata of the candidates in token order. Ascending.
std::vector<int64_t> sampleQueryTokens(const DumpInfo& info, const TokenSplit& split, int64_t want,
                                       uint64_t seed, int64_t* candidates = nullptr);

}  // namespace kvq
