// Rate-distortion sweep: one training per codebook size at the largest depth,
// every depth read from the error-by-depth curve (docs/metrics.md "Sweeps").
#include <algorithm>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/study/sweep.h"
#include "study/sub_task.h"

namespace kvq {
namespace {

void validateSweep(const StudyOptions& options, const std::vector<int>& codebookSizes,
                   const std::vector<int>& depths) {
  if (codebookSizes.empty()) throwBadInput("", "codebook_sizes", "no codebook size given");
  if (depths.empty()) throwBadInput("", "depths", "no depth given");
  // Depth k is read from the first k codes of the K-stage encoding: the k-stage
  // optimum only for greedy encoding. A beam's K-stage path need not extend the best
  // k-stage path, so the curve would not be what a k-stage quantizer gives.
  if (options.config.beamWidth > 1) {
    throwBadInput("", "beam_width",
                  "sweep reads every depth from one greedy encoding; beam width " +
                      std::to_string(options.config.beamWidth) +
                      " (set, or from a preset such as quality) is not supported: set it to 1");
  }
  for (int d : depths) {
    if (d < 1) throwBadInput("", "depths", "depths must be at least 1");
  }
}

// One RVQ point per layer x kind x C x depth, and the sum over the layers (layer -1).
void addRvqPoints(const StudyOptions& options, int headDim, SweepResult& sweep) {
  auto addRvq = [&](int layer, Kind kind, int C, int depth, const ErrorSums& error) {
    SweepPoint p;
    p.method = "rvq";
    p.layer = layer;
    p.kind = kind;
    p.codebookSize = C;
    p.depth = depth;
    p.groupSize = options.config.groupSize;
    p.bitsPerChannel = rvqBitsPerChannel(C, depth, options.config.groupSize, headDim);
    p.compressionRatio = compressionRatio(p.bitsPerChannel);
    p.error = error;
    sweep.points.push_back(p);
  };
  for (const StudyResult& study : sweep.studies) {
    const int C = study.config.codebookSize;
    for (Kind kind : options.kinds) {
      for (int d : sweep.depths) {
        for (const LayerKindResult& job : study.jobs) {
          if (job.kind == kind) addRvq(job.layer, kind, C, d, job.byDepth[d - 1]);
        }
        addRvq(-1, kind, C, d, study.total(d, &kind));
      }
    }
  }
}

// One KIVI point per layer x kind x bits, and the sum over the layers. The
// baselines were measured by the first study only (they do not depend on C).
void addBaselinePoints(const StudyOptions& options, SweepResult& sweep) {
  const StudyResult& first = sweep.studies.front();
  for (Kind kind : options.kinds) {
    for (size_t b = 0; b < options.baselineBits.size(); ++b) {
      SweepPoint total;
      for (const LayerKindResult& job : first.jobs) {
        if (job.kind != kind) continue;
        SweepPoint p;
        p.method = "kivi";
        p.layer = job.layer;
        p.kind = kind;
        p.bits = job.baselines[b].bits;
        p.groupSize = job.baselines[b].groupSize;
        p.bitsPerChannel = job.baselines[b].bitsPerChannel;
        p.compressionRatio = job.baselines[b].compressionRatio;
        p.error = job.baselines[b].error;
        sweep.points.push_back(p);
        ErrorSums sum = total.error;
        sum.merge(p.error);
        total = p;  // same method, bits and group size for every layer of the kind
        total.layer = -1;
        total.error = sum;
      }
      if (total.bits > 0) sweep.points.push_back(total);
    }
  }
}

}  // namespace

SweepResult runSweep(const DumpReader& reader, const StudyOptions& options,
                     const std::vector<int>& codebookSizes, const std::vector<int>& depths, Backend& backend,
                     const TaskControl* control) {
  validateSweep(options, codebookSizes, depths);
  SweepResult sweep;
  sweep.codebookSizes = codebookSizes;
  sweep.depths = depths;
  const int maxDepth = *std::max_element(depths.begin(), depths.end());
  for (size_t i = 0; i < codebookSizes.size(); ++i) {
    StudyOptions opts = options;
    opts.config.codebookSize = codebookSizes[i];
    opts.config.depth = maxDepth;
    if (i > 0) opts.baselineBits.clear();  // the baselines do not depend on C
    const double n = static_cast<double>(codebookSizes.size());
    const TaskControl ctl =
        subControl(control, static_cast<double>(i) / n, 1.0 / n, "C=" + std::to_string(codebookSizes[i]));
    sweep.studies.push_back(runStudy(reader, opts, backend, &ctl));
  }
  addRvqPoints(options, reader.info().headDim, sweep);
  addBaselinePoints(options, sweep);
  return sweep;
}

}  // namespace kvq
