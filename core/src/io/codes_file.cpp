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
  const int H = info.numKvHeads, D = info.headDim, g = config.groupSize, G = D / g, K = config.depth;
  const bool narrow = config.codebookSize <= 65536;
  chunkTokens =
      std::clamp<int64_t>(chunkTokens, 1, std::max<int64_t>(info.tokens, 1));  // t0 += never overflows

  EncodeSummary summary;
  summary.tokens = info.tokens;
  const std::string temporary = temporaryPathFor(outPath);
  {
    h5::Writer w(outPath, temporary);
    h5::writeAttr(w.root(), "kvq_format", std::string("rvq-codes"));
    h5::writeAttr(w.root(), "kvq_format_version", int64_t{1});
    h5::writeAttr(w.root(), "codebooks", codebooksPath);
    h5::writeAttr(w.root(), "source_dump", info.path);
    h5::writeAttr(w.root(), "head_dim", static_cast<int64_t>(D));
    h5::writeAttr(w.root(), "num_kv_heads", static_cast<int64_t>(H));
    h5::writeAttr(w.root(), "codebook_size", static_cast<int64_t>(config.codebookSize));
    h5::writeAttr(w.root(), "depth", static_cast<int64_t>(K));
    h5::writeAttr(w.root(), "group_size", static_cast<int64_t>(g));
    const h5::Datatype f16 = h5::makeHalfType();
    const std::vector<hsize_t> codeShape{static_cast<hsize_t>(info.tokens), static_cast<hsize_t>(H),
                                         static_cast<hsize_t>(G), static_cast<hsize_t>(K)};
    const std::vector<hsize_t> scaleShape{static_cast<hsize_t>(info.tokens), static_cast<hsize_t>(H)};

    const double total = static_cast<double>(codebooks.sets.size()) * std::max(T, 1);
    double done = 0;
    for (const QuantizerSet& set : codebooks.sets) {
      if (std::find(info.layers.begin(), info.layers.end(), set.layer) == info.layers.end()) {
        throwBadInput(info.path, "layer " + std::to_string(set.layer),
                      "the codebooks name a layer the dump lacks");
      }
      const std::string path = "/layers/" + std::to_string(set.layer) + "/" + kindName(set.kind);
      h5::Group group = w.createGroups(path);
      // Chunks of the blocks written below, so each block fills whole chunks.
      const auto chunkRows = static_cast<hsize_t>(chunkTokens);
      h5::Dataset codesSet =
          w.createDataset(group.get(), "codes", narrow ? H5T_STD_U16LE : H5T_STD_I32LE, codeShape, chunkRows);
      h5::Dataset scalesSet = w.createDataset(group.get(), "scales", f16.get(), scaleShape, chunkRows);
      for (int64_t t0 = 0; t0 < info.tokens; t0 += chunkTokens) {
        checkCancel(control);
        const Slab slab = reader.read(set.layer, set.kind, t0, std::min(chunkTokens, info.tokens - t0));
        const int64_t n = slab.tokens * H;
        std::vector<float> groups(static_cast<size_t>(n) * D), scales(static_cast<size_t>(n));
        std::vector<int32_t> codes(static_cast<size_t>(n) * G * K);
        if (set.codebooks.size() == 1) {
          scaleAndGroup(slab.data.data(), n, D, set.channelOrder, g, groups.data(), scales.data());
          encodeRvq(groups.data(), n * G, set.codebooks[0], config, backend, codes.data(), nullptr);
        } else {
          // Per head: gather one head's vectors, encode, scatter back into [t, H, G, K].
          std::vector<float> x(static_cast<size_t>(slab.tokens) * D), hGroups(x.size()), hScales(slab.tokens);
          std::vector<int32_t> hCodes(static_cast<size_t>(slab.tokens) * G * K);
          for (int h = 0; h < H; ++h) {
            for (int64_t t = 0; t < slab.tokens; ++t) std::copy_n(slab.vector(t, h), D, x.data() + t * D);
            scaleAndGroup(x.data(), slab.tokens, D, set.channelOrder, g, hGroups.data(), hScales.data());
            encodeRvq(hGroups.data(), slab.tokens * G, set.codebooks[h], config, backend, hCodes.data(),
                      nullptr);
            for (int64_t t = 0; t < slab.tokens; ++t) {
              scales[t * H + h] = hScales[t];
              std::copy_n(hCodes.data() + t * G * K, G * K, codes.data() + (t * H + h) * G * K);
            }
          }
        }
        std::vector<uint16_t> scaleBits(scales.size());
        for (size_t i = 0; i < scales.size(); ++i) scaleBits[i] = floatToHalf(scales[i]);
        w.writeRows(scalesSet.get(), f16.get(), scaleShape, static_cast<hsize_t>(t0),
                    static_cast<hsize_t>(slab.tokens), scaleBits.data());
        if (narrow) {
          std::vector<uint16_t> small(codes.begin(), codes.end());
          w.writeRows(codesSet.get(), H5T_NATIVE_UINT16, codeShape, static_cast<hsize_t>(t0),
                      static_cast<hsize_t>(slab.tokens), small.data());
        } else {
          w.writeRows(codesSet.get(), H5T_NATIVE_INT32, codeShape, static_cast<hsize_t>(t0),
                      static_cast<hsize_t>(slab.tokens), codes.data());
        }
        summary.codeBytes += codes.size() * (narrow ? 2 : 4) + scaleBits.size() * 2;
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
