// RvqConfig — every setting of a residual vector quantizer and of its training.
//
// Defaults are the paper's (Kumar 2024): C = 2048 entries, K = 8 stages, groups of
// g = 32 channels, strided grouping for keys and contiguous for values, k-means
// initialisation on up to 100 000 sampled residuals, EMA with decay 0.99 and
// Laplace epsilon 1e-5. Options beyond the paper are off in the "paper" preset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/base/field_table.h"
#include "kvq/dump/dump.h"

namespace kvq {

enum class Grouping { Contiguous, Strided };
enum class KMeansInit { RandomPoints, PlusPlus, Progressive };

// "contiguous", "strided" (alias "non-contiguous", the paper's word).
template <>
const std::vector<EnumName<Grouping>>& enumNames<Grouping>();
// "points" (the paper: random sample points), "kmeans++", "progressive".
template <>
const std::vector<EnumName<KMeansInit>>& enumNames<KMeansInit>();

const char* groupingName(Grouping grouping);
Grouping parseGrouping(const std::string& name,
                       const std::string& field = "grouping");  // BadInput naming field
const char* kmeansInitName(KMeansInit init);
KMeansInit parseKMeansInit(const std::string& name,
                           const std::string& field = "init");  // BadInput naming field

struct RvqConfig {
  std::string preset = "paper";
  int codebookSize = 2048;  // C entries per stage
  int depth = 8;            // K stages
  int groupSize = 32;       // g channels per group; must divide head_dim
  Grouping keyGrouping = Grouping::Strided;
  Grouping valueGrouping = Grouping::Contiguous;
  bool perHead = false;  // one quantizer per head instead of one per layer and kind

  // Training data: group vectors of the training tokens, subsampled to at most this.
  int64_t trainSample = 100000;
  // k-means initialisation of each stage on the residuals of the sample.
  KMeansInit init = KMeansInit::RandomPoints;
  int kmeansIterations = 10;
  // EMA refinement of each stage: `emaSteps` mini-batches of `batchSize` vectors.
  double emaDecay = 0.99;
  double emaEpsilon = 1e-5;
  int emaSteps = 100;
  int64_t batchSize = 16384;
  // Beyond the paper (off in "paper"): restart entries whose EMA count falls below
  // deadThreshold from random residuals; Lloyd iterations after EMA.
  double deadThreshold = 0.0;
  int lloydIterations = 0;

  // Joint refinement of all stages after training (kvq/rvq/refine.h): rounds of
  // re-encoding + least squares over every stage. 0 = off (the paper).
  int refineRounds = 0;
  // Keys trained and encoded under the query-weighted error sum_c E[q_c^2] (k_c - k~_c)^2 from
  // the dump's queries (kvq/study/channel_weights.h) instead of plain MSE. Off in "paper".
  bool queryAware = false;
  // Each kv head's per-channel mean over the training tokens is subtracted before scaling and
  // added back after decoding (stored with the codebooks). Exact: only what the codebooks must
  // represent changes. Off in "paper".
  bool centerChannels = false;

  // Encoding: 1 = greedy (the paper); > 1 = beam search with this width.
  int beamWidth = 1;
  // Training: stage k trains on the residuals that beam search of this width leaves after
  // stages < k (the best path's), instead of greedy residuals. 1 = greedy (the paper).
  int trainBeam = 1;

  // Held-out evaluation: this fraction of each sequence's tokens (its tail) is
  // kept out of training and used for every reported metric. 0 = train on all.
  double heldOutFraction = 0.25;
  uint64_t seed = 0;

  Grouping grouping(Kind kind) const { return kind == Kind::Keys ? keyGrouping : valueGrouping; }
};

// The fields of RvqConfig (or of a struct extending it) as one table, in the order
// the codebook file writes them; everything that lists, stores, parses or checks
// them derives from it (kvq/base/field_table.h). Cross-field rules (g divides D,
// the sample holds at least C vectors) are validateConfig's.
template <class Config = RvqConfig>
FieldTable<Config> rvqConfigFields() {
  using R = FieldRange;
  return {
      makeField<Config>("preset", &RvqConfig::preset,
                        "Settings to start from: paper, fast, quality, budget or model-loss"),
      makeField<Config>("codebook_size", &RvqConfig::codebookSize, "C: entries per codebook (paper: 2048)",
                        R::closed(2, 1 << 24)),
      makeField<Config>("depth", &RvqConfig::depth, "K: residual stages (paper: 8)", R::closed(1, 64)),
      makeField<Config>("group_size", &RvqConfig::groupSize,
                        "g: channels per group; must divide head_dim (paper: 32)", R::atLeast(1)),
      makeField<Config>("key_grouping", &RvqConfig::keyGrouping,
                        "Channel grouping of keys: strided (paper) or contiguous"),
      makeField<Config>("value_grouping", &RvqConfig::valueGrouping,
                        "Grouping of values: contiguous (paper) or strided"),
      makeField<Config>("per_head", &RvqConfig::perHead,
                        "One quantizer per head instead of one per layer and kind"),
      makeField<Config>("train_sample", &RvqConfig::trainSample,
                        "At most this many group vectors train each quantizer (at least C)"),
      makeField<Config>("init", &RvqConfig::init,
                        "k-means initialisation: points (paper), kmeans++ or progressive"),
      makeField<Config>("kmeans_iterations", &RvqConfig::kmeansIterations,
                        "k-means iterations of each stage's init", R::atLeast(0)),
      makeField<Config>("ema_decay", &RvqConfig::emaDecay, "EMA decay lambda (paper: 0.99)",
                        R::halfOpen(0, 1)),
      makeField<Config>("ema_epsilon", &RvqConfig::emaEpsilon, "Laplace smoothing epsilon (paper: 1e-5)",
                        R::above(0)),
      makeField<Config>("ema_steps", &RvqConfig::emaSteps, "EMA mini-batch steps per stage", R::atLeast(0)),
      makeField<Config>("batch_size", &RvqConfig::batchSize, "Vectors per EMA mini-batch", R::atLeast(1)),
      makeField<Config>(
          "dead_threshold", &RvqConfig::deadThreshold,
          "Restart entries whose EMA count falls below this fraction of the mean count (0 = off, "
          "the paper)",
          R::atLeast(0)),
      makeField<Config>("lloyd_iterations", &RvqConfig::lloydIterations,
                        "Lloyd refinement iterations after EMA (0 = off, the paper)", R::atLeast(0)),
      optionalInFiles(makeField<Config>(
          "refine_rounds", &RvqConfig::refineRounds,
          "Joint refinement rounds of all stages after training (0 = off, the paper)", R::closed(0, 100))),
      optionalInFiles(makeField<Config>("query_aware", &RvqConfig::queryAware,
                                        "Keys: weight each channel's error by the dump's query second "
                                        "moment (needs /queries; off = plain MSE, the paper)")),
      optionalInFiles(makeField<Config>("center_channels", &RvqConfig::centerChannels,
                                        "Subtract each kv head's per-channel training mean before "
                                        "scaling and add it back after decoding (off = the paper)")),
      makeField<Config>("beam_width", &RvqConfig::beamWidth, "Encoding beam width (1 = greedy, the paper)",
                        R::closed(1, 64)),
      optionalInFiles(makeField<Config>("train_beam", &RvqConfig::trainBeam,
                                        "Training beam width: each stage trains on the residuals of "
                                        "beam-search encoding through the stages before it (1 = greedy, "
                                        "the paper)",
                                        R::closed(1, 64))),
      makeField<Config>("held_out_fraction", &RvqConfig::heldOutFraction,
                        "Fraction of each sequence's tail kept out of training and evaluated (0 = no split)",
                        R::halfOpen(0, 1)),
      makeField<Config>("seed", &RvqConfig::seed, "Random seed of sampling and training"),
  };
}

// The table of RvqConfig itself, built once.
const FieldTable<RvqConfig>& rvqConfigTable();

// Named presets: "paper" (the defaults above), "fast" (small sample, few steps:
// interactive exploration), "quality" (dead-entry reseeding, Lloyd refinement,
// beam 4), "budget" (C = 256, g = 8, K = 4: codebooks for kvq allocate's per-layer depths).
// Throws Error(BadInput) on an unknown name.
RvqConfig presetConfig(const std::string& name);
std::vector<std::string> presetNames();

// Throws Error(BadInput, "", "<field>", problem) when a setting is invalid for a
// dump of head dimension headDim: the ranges of rvqConfigFields, then g must divide
// headDim (when > 0) and train_sample must be at least codebook_size. The field is
// named as in the table ("group_size"); the CLI and GUI present it in their terms.
void validateConfig(const RvqConfig& config, int headDim);

// Bits per channel of the compressed cache, b = K*log2(C)/g + 16/D, and the
// compression ratio against fp16, 16/b (docs/metrics.md).
double rvqBitsPerChannel(int codebookSize, int depth, int groupSize, int headDim);
double compressionRatio(double bitsPerChannel);

}  // namespace kvq
