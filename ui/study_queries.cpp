#include "study_queries.h"

#include <algorithm>
#include <cmath>

namespace kvq::ui {

const kvq::LayerKindResult* findJob(const kvq::StudyResult& study, int layer, kvq::Kind kind) {
  for (const kvq::LayerKindResult& job : study.jobs) {
    if (job.layer == layer && job.kind == kind) return &job;
  }
  return nullptr;
}

std::vector<kvq::Kind> studyKinds(const kvq::StudyResult& study) {
  std::vector<kvq::Kind> kinds;
  for (const kvq::Kind kind : {kvq::Kind::Keys, kvq::Kind::Values}) {
    const bool present = std::any_of(study.jobs.begin(), study.jobs.end(),
                                     [kind](const kvq::LayerKindResult& j) { return j.kind == kind; });
    if (present) kinds.push_back(kind);
  }
  return kinds;
}

std::vector<int> studyLayers(const kvq::StudyResult& study) {
  std::vector<int> layers;
  for (const kvq::LayerKindResult& job : study.jobs) layers.push_back(job.layer);
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  return layers;
}

int trainedDepth(const kvq::StudyResult& study) {
  if (study.jobs.empty()) return 0;
  return static_cast<int>(study.jobs.front().byDepth.size());
}

double studyBitsPerChannel(const kvq::StudyResult& study, int depth) {
  return kvq::rvqBitsPerChannel(study.config.codebookSize, depth, study.config.groupSize, study.headDim);
}

kvq::ErrorSums baselineTotal(const kvq::StudyResult& study, kvq::Kind kind, size_t index) {
  kvq::ErrorSums total;
  for (const kvq::LayerKindResult& job : study.jobs) {
    if (job.kind == kind && index < job.baselines.size()) total.merge(job.baselines[index].error);
  }
  return total;
}

double baselineBitsPerChannel(const kvq::StudyResult& study, kvq::Kind kind, size_t index) {
  for (const kvq::LayerKindResult& job : study.jobs) {
    if (job.kind == kind && index < job.baselines.size()) return job.baselines[index].bitsPerChannel;
  }
  return 0.0;
}

bool hasAttention(const kvq::StudyResult& study) {
  return !study.attention.layers.empty();
}

const kvq::AttentionMethodResult* findAttention(const kvq::LayerAttentionResult& layer,
                                                const std::string& method, int depthOrBits) {
  for (const kvq::AttentionMethodResult& m : layer.methods) {
    if (m.method == method && (method == "rvq" ? m.depth : m.bits) == depthOrBits) return &m;
  }
  return nullptr;
}

std::vector<int> attentionDepths(const kvq::StudyResult& study) {
  std::vector<int> depths;
  if (!hasAttention(study)) return depths;
  for (const kvq::AttentionMethodResult& m : study.attention.layers.front().methods) {
    if (m.method == "rvq") depths.push_back(m.depth);
  }
  std::sort(depths.begin(), depths.end());
  return depths;
}

int attentionDepthFor(const kvq::StudyResult& study, int depth) {
  const std::vector<int> depths = attentionDepths(study);
  if (depths.empty()) return 0;
  int best = depths.front();
  for (int d : depths) {
    if (d <= depth) best = d;
  }
  return best;
}

int kiviBitsNear(const kvq::StudyResult& study, double bitsPerChannel) {
  if (!hasAttention(study)) return 0;
  int best = 0;
  double bestGap = 0;
  for (const kvq::AttentionMethodResult& m : study.attention.layers.front().methods) {
    if (m.method != "kivi") continue;
    const double gap = std::abs(m.bitsPerChannel - bitsPerChannel);
    if (best == 0 || gap < bestGap - 1e-9 || (std::abs(gap - bestGap) <= 1e-9 && m.bits < best)) {
      best = m.bits;
      bestGap = gap;
    }
  }
  return best;
}

}  // namespace kvq::ui
