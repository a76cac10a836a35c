#include "kvq/io/codebook_fit.h"

#include <algorithm>
#include <string>

#include "kvq/base/error.h"

namespace kvq {
namespace {

std::string listText(const std::vector<int>& values) {
  std::string text;
  for (int v : values) text += (text.empty() ? "" : ", ") + std::to_string(v);
  return text;
}

bool contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

std::vector<int> codebookLayers(const CodebookFile& file) {
  std::vector<int> layers;
  for (const QuantizerSet& s : file.sets) {
    if (!contains(layers, s.layer)) layers.push_back(s.layer);
  }
  std::sort(layers.begin(), layers.end());
  return layers;
}

void checkCodebooksFitDump(const CodebookFile& file, const std::string& path, const DumpInfo& info,
                           const std::vector<int>& layers) {
  if (file.headDim != info.headDim) {
    throwBadInput(path, "head_dim",
                  "the codebooks were trained for head_dim " + std::to_string(file.headDim) +
                      ", the dump has " + std::to_string(info.headDim));
  }
  if (file.config.perHead && file.numKvHeads != info.numKvHeads) {
    throwBadInput(path, "num_kv_heads",
                  "the codebooks hold one quantizer per head for " + std::to_string(file.numKvHeads) +
                      " kv heads, the dump has " + std::to_string(info.numKvHeads));
  }
  const int g = file.config.groupSize;
  if (g <= 0 || info.headDim % g != 0) {
    throwBadInput(path, "group_size",
                  "group size " + std::to_string(g) + " does not divide the dump's head_dim " +
                      std::to_string(info.headDim));
  }
  for (const QuantizerSet& s : file.sets) {
    if (!s.channelMeans.empty() && file.numKvHeads != info.numKvHeads) {
      throwBadInput(path, "num_kv_heads",
                    "the codebooks centre channels by means of " + std::to_string(file.numKvHeads) +
                        " kv heads, the dump has " + std::to_string(info.numKvHeads));
    }
    if (static_cast<int>(s.channelOrder.size()) != info.headDim) {
      throwBadInput(path, "layer " + std::to_string(s.layer) + " " + kindName(s.kind),
                    "channel order of " + std::to_string(s.channelOrder.size()) +
                        " channels, the dump has head_dim " + std::to_string(info.headDim));
    }
  }
  const std::vector<int> stored = codebookLayers(file);
  for (int layer : layers.empty() ? stored : layers) {
    if (!contains(stored, layer)) {
      throwBadInput(
          path, "layer " + std::to_string(layer),
          "the codebooks hold no quantizer for this layer (they hold layers " + listText(stored) + ")");
    }
    if (!contains(info.layers, layer)) {
      throwBadInput(path, "layer " + std::to_string(layer),
                    "the dump " + info.path + " does not hold this layer (it holds layers " +
                        listText(info.layers) + ")");
    }
  }
}

}  // namespace kvq
