// The layer pipeline shared by the CLI and the GUI: train residual quantizers on
// the training tokens of a dump and measure them on its held-out tokens.
//
// Per layer x kind (one job): split tokens, read a training sample, scale and
// group it, train one quantizer (or one per head), then stream the held-out tokens
// in chunks (bounded memory) through encode -> incremental decode -> metrics, and
// through the KIVI-style scalar baselines. StudyResult is the one structure the
// GUI charts and the reports serialise. Definitions: docs/metrics.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/dump/dump.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/rvq/trainer.h"
#include "kvq/study/attention_study.h"
#include "kvq/study/metrics.h"
#include "kvq/study/scalar_baseline.h"

namespace kvq {

class DumpReader;

// A half-open token range [begin, end) of the dump.
struct TokenRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Which tokens train and which evaluate. With heldOutFraction f > 0 the tail
// round(f * length) tokens of every sequence (per /sequence_starts, or the whole
// dump as one sequence) are held out; with f = 0 every token is used for both.
struct TokenSplit {
  double heldOutFraction = 0;
  bool perSequence = false;         // true when /sequence_starts defined the sequences
  std::vector<TokenRange> train;    // ascending, disjoint
  std::vector<TokenRange> heldOut;  // ascending, disjoint from train when f > 0
  int64_t trainTokens = 0;
  int64_t heldOutTokens = 0;
};

// Throws Error(BadInput, "held_out_fraction") when a side would be empty.
TokenSplit splitTokens(int64_t tokens, const std::vector<int64_t>& sequenceStarts, double heldOutFraction);

struct StudyOptions {
  RvqConfig config;
  std::vector<int> layers;  // empty: every layer present in the dump
  std::vector<Kind> kinds = {Kind::Keys, Kind::Values};
  std::vector<int> baselineBits = {2, 3, 4};  // empty: no scalar baselines
  int baselineTokenGroup = 32;                // n_t (keys)
  int baselineChannelGroup = 32;              // n_c (values)
  int64_t chunkTokens = 1024;                 // evaluation block; rounded up to a multiple of n_t
  AttentionOptions attention;                 // attention metrics after the jobs (attention.enabled)
  // Further dumps whose training tokens (the same held-out fraction of each) join the first
  // dump's, pooled per layer x kind, in this order after the first's: as if one dump held
  // the tokens of all. Not owned; each must agree with the first in shape (checkPoolable).
  // Held-out evaluation and every reported metric use the first dump only. runStudy only.
  std::vector<const DumpReader*> alsoTrainOn;
};

// Throws Error(BadInput, other.path, field) naming both files when `other`'s training
// vectors cannot join `first`'s: head_dim, num_kv_heads, num_layers, num_q_heads, key_rope,
// rope_theta, rope_dim, rope_layout differ, one of `layers` is missing, or (needQueries,
// query_aware keys) it stores no queries.
void checkPoolable(const DumpInfo& first, const DumpInfo& other, const std::vector<int>& layers,
                   bool needQueries);

// One trained quantizer (shared by the heads of a layer x kind, or one head's).
struct QuantizerResult {
  int head = -1;                  // -1: shared by every head
  Codebooks codebooks;            // [K, C, g]
  TrainStats train;               // per-stage training error, reseeds, seconds
  int64_t trainVectors = 0;       // group vectors the trainer received (before its own subsampling)
  std::vector<StageUsage> usage;  // [K] code frequencies on the held-out tokens
};

struct BaselineResult {
  int bits = 0;                 // b
  int groupSize = 0;            // n_t for keys, n_c for values
  double bitsPerChannel = 0;    // b + 32/n
  double compressionRatio = 0;  // 16 / bitsPerChannel
  ErrorSums error;              // held-out, all heads
};

// Everything measured for one layer and kind.
struct LayerKindResult {
  int layer = 0;
  Kind kind = Kind::Keys;
  Grouping grouping = Grouping::Strided;
  std::vector<int> channelOrder;                       // [D]
  std::vector<float> channelWeights;                   // [D] query-aware key weights; empty = none
  std::vector<float> channelMeans;                     // [H, D] per-head channel means; empty = none
  std::vector<QuantizerResult> quantizers;             // [1] or [H] when config.perHead
  std::vector<ErrorSums> byDepth;                      // [K] held-out, all heads, first k stages
  std::vector<std::vector<ErrorSums>> perHeadByDepth;  // [H][K]
  std::vector<BaselineResult> baselines;               // one per StudyOptions::baselineBits
  double bitsPerChannel = 0;                           // K log2(C)/g + 16/D
  double compressionRatio = 0;                         // 16 / bitsPerChannel
  double codebookBits = 0;                             // quantizers * K*C*g*32 (+ H*D*32 of the means)
  double amortisedBitsPerChannel = 0;                  // over all T*H vectors of this layer/kind in the dump
  double amortisedCompressionRatio = 0;
  int64_t evalVectors = 0;  // held-out token-head vectors
  double trainSeconds = 0;  // reading + preprocessing + training
  double evalSeconds = 0;

  const ErrorSums& error() const { return byDepth.back(); }  // at full depth K
};

struct StudyResult {
  RvqConfig config;
  std::string dumpPath;
  std::vector<std::string> alsoTrainedOn;  // paths of StudyOptions::alsoTrainOn, in order
  std::string model;
  int headDim = 0;
  int numKvHeads = 0;
  int64_t tokens = 0;
  TokenSplit split;
  std::vector<int> baselineBits;
  int baselineTokenGroup = 32;
  int baselineChannelGroup = 32;
  std::vector<LayerKindResult> jobs;  // layer-major, kinds in StudyOptions order
  std::string backendName;
  std::string codebooksPath;  // set by evaluateCodebooks; "" when trained here
  AttentionResult attention;  // empty layers unless StudyOptions::attention.enabled
  double totalSeconds = 0;

  // Sums over every job of one kind (or all kinds with kind = nullptr) at depth k.
  ErrorSums total(int depth, const Kind* kind = nullptr) const;
};

// Trains and evaluates every selected layer x kind. Progress is the fraction of
// all jobs; cancellation throws Error(Cancelled). Bad options throw BadInput
// naming the field ("layers", "group_size": StudyOptions and RvqConfig names).
StudyResult runStudy(const DumpReader& reader, const StudyOptions& options, Backend& backend,
                     const TaskControl* control = nullptr);

// Evaluation only: measures existing quantizers (e.g. read from a codebook file
// with the config they were trained with) on the dump's held-out tokens.
// options.layers/kinds filter the sets; options.config must be the training config.
// codebooksPath: the file the sets came from ("" if none), named in errors and reports.
StudyResult evaluateCodebooks(const DumpReader& reader, const std::vector<QuantizerSet>& sets,
                              const std::string& codebooksPath, const StudyOptions& options, Backend& backend,
                              const TaskControl* control = nullptr);

// The quantizers of a StudyResult in the form the codebook file stores.
std::vector<QuantizerSet> quantizerSets(const StudyResult& result);

}  // namespace kvq
