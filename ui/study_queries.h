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

}  // namespace kvq::ui
