// `kvq encode`: the compressed cache of a whole dump as a codes file
// (layout in kvq/io/codes_file.h and docs/codebook-format.md).
#include "kvq/io/codes_file.h"
#include "kvq/rvq/encoder.h"

#include <algorithm>
#include <limits>

#include "h5/h5_file.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/base/half.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/rvq/trainer.h"

namespace kvq {

namespace {

// Shapes and types of one layer x kind's datasets.
struct CodesLayout {
  int H, D, g, G, K;
  bool narrow;                      // uint16 codes (C <= 65536), else int32
  std::vector<hsize_t> codeShape;   // [T, H, G, K]
  std::vector<hsize_t> scaleShape;  // [T, H]
};

CodesLayout codesLayout(const DumpInfo& info, const RvqConfig& config) {
  CodesLayout l;
  l.H = info.numKvHeads;
  l.D = info.headDim;
  l.g = config.groupSize;
  l.G = l.D / l.g;
  l.K = config.depth;
  l.narrow = config.codebookSize <= 65536;
  l.codeShape = {static_cast<hsize_t>(info.tokens), static_cast<hsize_t>(l.H), static_cast<hsize_t>(l.G),
                 static_cast<hsize_t>(l.K)};
  l.scaleShape = {static_cast<hsize_t>(info.tokens), static_cast<hsize_t>(l.H)};
  return l;
}

void writeCodesHeader(hid_t root, const DumpInfo& info, const RvqConfig& config,
                      const std::string& codebooksPath) {
  h5::writeAttr(root, "kvq_format", std::string("rvq-codes"));
  h5::writeAttr(root, "kvq_format_version", int64_t{1});
  h5::writeAttr(root, "codebooks", codebooksPath);
  h5::writeAttr(root, "source_dump", info.path);
  h5::writeAttr(root, "head_dim", static_cast<int64_t>(info.headDim));
  h5::writeAttr(root, "num_kv_heads", static_cast<int64_t>(info.numKvHeads));
  h5::writeAttr(root, "codebook_size", static_cast<int64_t>(config.codebookSize));
  h5::writeAttr(root, "depth", static_cast<int64_t>(config.depth));
  h5::writeAttr(root, "group_size", static_cast<int64_t>(config.groupSize));
}

// Encodes a slab's n = tokens x H vectors (token-major): codes [n, G, K], scales [n].
void encodeSlab(const Slab& slab, const QuantizerSet& set, const RvqConfig& config, const CodesLayout& l,
                Backend& backend, std::vector<int32_t>& codes, std::vector<float>& scales) {
  const int64_t n = slab.tokens * l.H;
  codes.assign(static_cast<size_t>(n) * l.G * l.K, 0);
  scales.assign(static_cast<size_t>(n), 0.0f);
  if (set.codebooks.size() == 1) {
    std::vector<float> groups(static_cast<size_t>(n) * l.D);
    scaleAndGroup(slab.data.data(), n, l.D, set.channelOrder, l.g, groups.data(), scales.data(),
                  weightsOrNull(set.channelWeights), meansOrNull(set.channelMeans), l.H);
    encodeRvq(groups.data(), n * l.G, set.codebooks[0], config, backend, codes.data(), nullptr);
    return;
  }
  // Per head: gather one head's vectors, encode, scatter back into [t, H, G, K].
  std::vector<float> x(static_cast<size_t>(slab.tokens) * l.D), hGroups(x.size()), hScales(slab.tokens);
  std::vector<int32_t> hCodes(static_cast<size_t>(slab.tokens) * l.G * l.K);
  for (int h = 0; h < l.H; ++h) {
    for (int64_t t = 0; t < slab.tokens; ++t) std::copy_n(slab.vector(t, h), l.D, x.data() + t * l.D);
    scaleAndGroup(x.data(), slab.tokens, l.D, set.channelOrder, l.g, hGroups.data(), hScales.data(),
                  weightsOrNull(set.channelWeights), headMeansOrNull(set.channelMeans, h, l.D), 1);
    encodeRvq(hGroups.data(), slab.tokens * l.G, set.codebooks[h], config, backend, hCodes.data(), nullptr);
    for (int64_t t = 0; t < slab.tokens; ++t) {
      scales[t * l.H + h] = hScales[t];
      std::copy_n(hCodes.data() + t * l.G * l.K, l.G * l.K, codes.data() + (t * l.H + h) * l.G * l.K);
    }
  }
}

// Writes rows [t0, t0 + tokens) of both datasets; returns the bytes of codes and scales.
uint64_t writeBlock(h5::Writer& w, hid_t codesSet, hid_t scalesSet, hid_t f16, const CodesLayout& l,
                    int64_t t0, int64_t tokens, const std::vector<int32_t>& codes,
                    const std::vector<float>& scales) {
  std::vector<uint16_t> scaleBits(scales.size());
  for (size_t i = 0; i < scales.size(); ++i) scaleBits[i] = floatToHalf(scales[i]);
  w.writeRows(scalesSet, f16, l.scaleShape, static_cast<hsize_t>(t0), static_cast<hsize_t>(tokens),
              scaleBits.data());
  if (l.narrow) {
    std::vector<uint16_t> small(codes.begin(), codes.end());
    w.writeRows(codesSet, H5T_NATIVE_UINT16, l.codeShape, static_cast<hsize_t>(t0),
                static_cast<hsize_t>(tokens), small.data());
  } else {
    w.writeRows(codesSet, H5T_NATIVE_INT32, l.codeShape, static_cast<hsize_t>(t0),
                static_cast<hsize_t>(tokens), codes.data());
  }
  return codes.size() * (l.narrow ? 2 : 4) + scaleBits.size() * 2;
}

}  // namespace

EncodeSummary encodeDumpToFile(const DumpReader& reader, const CodebookFile& codebooks,
                               const std::string& codebooksPath, const std::string& outPath, Backend& backend,
                               const TaskControl* control, int64_t chunkTokens) {
  h5::ErrorSilencer silence;
  const DumpInfo& info = reader.info();
  const RvqConfig& config = codebooks.config;
  if (codebooks.headDim != info.headDim || codebooks.numKvHeads != info.numKvHeads) {
    throwBadInput(codebooksPath, "/ head_dim, num_kv_heads",
                  "the codebooks were trained for another head shape");
  }
  const int T = static_cast<int>(std::min<int64_t>(info.tokens, std::numeric_limits<int>::max()));
  const CodesLayout layout = codesLayout(info, config);
  chunkTokens =
      std::clamp<int64_t>(chunkTokens, 1, std::max<int64_t>(info.tokens, 1));  // t0 += never overflows

  EncodeSummary summary;
  summary.tokens = info.tokens;
  const std::string temporary = temporaryPathFor(outPath);
  {
    h5::Writer w(outPath, temporary);
    writeCodesHeader(w.root(), info, config, codebooksPath);
    const h5::Datatype f16 = h5::makeHalfType();
    const double total = static_cast<double>(codebooks.sets.size()) * std::max(T, 1);
    double done = 0;
    std::vector<int32_t> codes;
    std::vector<float> scales;
    for (const QuantizerSet& set : codebooks.sets) {
      if (std::find(info.layers.begin(), info.layers.end(), set.layer) == info.layers.end()) {
        throwBadInput(info.path, "layer " + std::to_string(set.layer),
                      "the codebooks name a layer the dump lacks");
      }
      h5::Group group = w.createGroups("/layers/" + std::to_string(set.layer) + "/" + kindName(set.kind));
      // Chunks of the blocks written below, so each block fills whole chunks.
      const auto chunkRows = static_cast<hsize_t>(chunkTokens);
      h5::Dataset codesSet = w.createDataset(
          group.get(), "codes", layout.narrow ? H5T_STD_U16LE : H5T_STD_I32LE, layout.codeShape, chunkRows);
      h5::Dataset scalesSet = w.createDataset(group.get(), "scales", f16.get(), layout.scaleShape, chunkRows);
      for (int64_t t0 = 0; t0 < info.tokens; t0 += chunkTokens) {
        checkCancel(control);
        const Slab slab = reader.read(set.layer, set.kind, t0, std::min(chunkTokens, info.tokens - t0));
        encodeSlab(slab, set, config, layout, backend, codes, scales);
        summary.codeBytes +=
            writeBlock(w, codesSet.get(), scalesSet.get(), f16.get(), layout, t0, slab.tokens, codes, scales);
        done += static_cast<double>(slab.tokens);
        reportProgress(control, done / total,
                       "encoding L" + std::to_string(set.layer) + " " + kindName(set.kind));
      }
      ++summary.sets;
    }
    w.close();
  }
  commitTemporaryFile(temporary, outPath);
  return summary;
}

}  // namespace kvq
