// How much work a study is, and how fast a backend does it: the GUI's auto-train
// decision ("trains the selected layers in <= 2 s?") and its plan of background
// trainings (which codebook sizes, their memory) come from here.
//
// Work is counted in nearest-entry multiply-adds (one vector against one entry of
// g channels is g of them), the operation that dominates training and encoding
// (docs/engine.md). It is an estimate: host-side statistics, reading and the KIVI
// baselines are not counted; the measured throughput of real trainings absorbs them.
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/dump/dump.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/study/attention_study.h"

namespace kvq {

// Multiply-adds of trainRvq on n group vectors (before its own subsampling to
// config.trainSample): per stage, the k-means and Lloyd iterations and the two
// assignments search the whole sample, every EMA step one mini-batch.
double trainingWork(const RvqConfig& config, int64_t n);

// Multiply-adds of a whole study of `layers` layer x kind pairs of `kinds` kinds:
// training (one quantizer per job or per head) plus greedy/beam encoding of the
// held-out tokens. trainTokens, heldOutTokens: the token split's sizes.
double studyWork(const RvqConfig& config, const DumpInfo& info, int layers, int kinds, int64_t trainTokens,
                 int64_t heldOutTokens);

// Multiply-adds of the attention measurement (kvq/study/attention_study.h) on `layers`
// layers with queries, trained codebooks in hand: per layer, both kinds of every token of
// every kv head encoded through K stages, and for each sampled query token (at most
// options.queriesPerLayer of the held-out tokens), each query head, the reference and every
// method (RVQ depths, KIVI-b for each of baselineBits, with its window when asked),
// scores and weighted values over its visible keys — estimated as the mean sequence length
// less half the held-out tail. The cost the GUI's auto-train adds when a dump has queries.
double attentionWork(const RvqConfig& config, const AttentionOptions& options, const DumpInfo& info,
                     int layers, int64_t heldOutTokens, const std::vector<int>& baselineBits = {2, 3, 4});

// Measures backend's nearest-entry throughput in multiply-adds per second on a fixed
// synthetic problem (16384 vectors of 32 channels against 256 entries, about 20 ms
// on a 2-core CPU). Deterministic inputs; the time is the fastest of three runs.
double measureThroughput(Backend& backend);

// The quick first pass of a progressive training: the same quantizer (C, K, g,
// grouping, encoding, held-out split, seed) trained on a smaller sample with fewer
// k-means and EMA steps and no Lloyd refinement. The sample stays >= C.
RvqConfig previewConfig(const RvqConfig& config);

// Codebook sizes around c within [minSize, maxSize], nearest first and smaller
// before larger at equal distance: c/2, 2c, c/4, 4c, ... (powers of two times c).
std::vector<int> neighbourSizes(int c, int minSize, int maxSize);

// Approximate bytes a study keeps for its quantizers: per quantizer K*C*g float32
// entries and K*C int64 usage counts. quantizers: layer x kind jobs (x heads when
// per head).
double studyBytes(const RvqConfig& config, int quantizers);

}  // namespace kvq
