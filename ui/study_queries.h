// Read-only questions the charts ask of a StudyResult (no Qt widgets).
#pragma once

#include <vector>

#include "kvq/study/quantize_study.h"

namespace kvq::ui {

// The job of layer/kind, or nullptr when the study did not train it.
const kvq::LayerKindResult* findJob(const kvq::StudyResult& study, int layer, kvq::Kind kind);
// Kinds the study trained, in order keys, values.
std::vector<kvq::Kind> studyKinds(const kvq::StudyResult& study);
// Layers the study trained, ascending.
std::vector<int> studyLayers(const kvq::StudyResult& study);
// Trained depth K (every depth 1..K can be read from one study).
int trainedDepth(const kvq::StudyResult& study);
// RVQ bits per channel of the study's C, g, D at depth k.
double studyBitsPerChannel(const kvq::StudyResult& study, int depth);
// Held-out error of baseline i (of study.baselineBits) summed over the layers of kind.
kvq::ErrorSums baselineTotal(const kvq::StudyResult& study, kvq::Kind kind, size_t index);
// Its bits per channel (0 when no job of kind has it).
double baselineBitsPerChannel(const kvq::StudyResult& study, kvq::Kind kind, size_t index);

// ---- attention (StudyResult::attention) ------------------------------------------

// True when the study measured attention on at least one layer.
bool hasAttention(const kvq::StudyResult& study);
// The method of one layer's attention result ("rvq" with depth, "kivi"/"kivi-window"
// with bits), or nullptr.
const kvq::AttentionMethodResult* findAttention(const kvq::LayerAttentionResult& layer,
                                                const std::string& method, int depthOrBits);
// The RVQ depths the study measured attention at, ascending.
std::vector<int> attentionDepths(const kvq::StudyResult& study);
// The measured depth to show for `depth`: the largest one <= depth (else the smallest); 0 if none.
int attentionDepthFor(const kvq::StudyResult& study, int depth);
// The KIVI bits (of study.baselineBits) whose attention bits per channel are nearest
// to `bitsPerChannel` (the lower on a tie); 0 when the study has none.
int kiviBitsNear(const kvq::StudyResult& study, double bitsPerChannel);

}  // namespace kvq::ui
