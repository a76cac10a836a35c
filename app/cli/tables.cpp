#include "tables.h"

#include <cstdio>
#include <string>

namespace kvq::cli {

void printStudyTable(const StudyResult& s) {
  const RvqConfig& c = s.config;
  std::printf("dump     %s (%s), %lld tokens: %lld train, %lld held out (%.0f%% tail of each %s)\n",
              s.dumpPath.c_str(), s.model.c_str(), static_cast<long long>(s.tokens),
              static_cast<long long>(s.split.trainTokens), static_cast<long long>(s.split.heldOutTokens),
              s.split.heldOutFraction * 100.0, s.split.perSequence ? "sequence" : "dump");
  for (const std::string& path : s.alsoTrainedOn) std::printf("also     trained on %s\n", path.c_str());
  const std::string trainBeam = c.trainBeam > 1 ? ", training beam " + std::to_string(c.trainBeam) : "";
  std::printf("config   preset %s, C=%d K=%d g=%d, keys %s, values %s%s, beam %d%s, seed %llu\n",
              c.preset.c_str(), c.codebookSize, c.depth, c.groupSize, groupingName(c.keyGrouping),
              groupingName(c.valueGrouping), c.perHead ? ", per head" : "", c.beamWidth, trainBeam.c_str(),
              static_cast<unsigned long long>(c.seed));
  std::printf("backend  %s, %.1f s\n\n", s.backendName.c_str(), s.totalSeconds);
  std::printf("%5s %-6s %-10s %6s %6s %9s %7s %7s %6s  %s\n", "layer", "kind", "grouping", "bits", "ratio",
              "rel.err", "SNR dB", "cosine", "used", "rel.err by depth 1..K");
  for (const LayerKindResult& job : s.jobs) {
    const ErrorSums& e = job.error();
    double used = 0;
    int stages = 0;
    for (const QuantizerResult& q : job.quantizers) {
      for (const StageUsage& u : q.usage) used += u.fractionUsed, ++stages;
    }
    std::string curve;
    for (const ErrorSums& d : job.byDepth) {
      char buffer[16];
      std::snprintf(buffer, sizeof buffer, " %.4f", d.relativeError());
      curve += buffer;
    }
    std::printf("%5d %-6s %-10s %6.3f %6.2f %9.5f %7.2f %7.4f %5.0f%% %s\n", job.layer, kindName(job.kind),
                groupingName(job.grouping), job.bitsPerChannel, job.compressionRatio, e.relativeError(),
                e.snrDb(), e.meanCosine(), stages > 0 ? 100.0 * used / stages : 0.0, curve.c_str());
    for (const BaselineResult& b : job.baselines) {
      std::printf("%5s %-6s %-10s %6.3f %6.2f %9.5f %7.2f %7.4f\n", "", "",
                  ("kivi-" + std::to_string(b.bits)).c_str(), b.bitsPerChannel, b.compressionRatio,
                  b.error.relativeError(), b.error.snrDb(), b.error.meanCosine());
    }
  }
  const ErrorSums all = s.total(c.depth);
  std::printf("\nall layers and kinds: relative error %.5f, SNR %.2f dB, cosine %.4f over %lld vectors\n",
              all.relativeError(), all.snrDb(), all.meanCosine(), static_cast<long long>(all.vectors));
}

void printSweepTable(const SweepResult& sweep) {
  std::printf("%-6s %-6s %6s %5s %5s %7s %7s %9s %7s %7s\n", "method", "kind", "C", "K", "b", "bits", "ratio",
              "rel.err", "SNR dB", "cosine");
  for (const SweepPoint& p : sweep.points) {
    if (p.layer >= 0) continue;  // the table shows the sums over layers; the files have every layer
    std::printf("%-6s %-6s %6s %5s %5s %7.3f %7.2f %9.5f %7.2f %7.4f\n", p.method.c_str(), kindName(p.kind),
                p.codebookSize > 0 ? std::to_string(p.codebookSize).c_str() : "-",
                p.depth > 0 ? std::to_string(p.depth).c_str() : "-",
                p.bits > 0 ? std::to_string(p.bits).c_str() : "-", p.bitsPerChannel, p.compressionRatio,
                p.error.relativeError(), p.error.snrDb(), p.error.meanCosine());
  }
}

}  // namespace kvq::cli
