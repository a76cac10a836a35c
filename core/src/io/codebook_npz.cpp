#include "kvq/io/codebook_npz.h"

#include <nlohmann/json.hpp>

#include "kvq/io/npz_writer.h"

namespace kvq {

void writeCodebookNpz(const std::string& path, const CodebookFile& file) {
  NpzWriter npz;
  for (const QuantizerSet& set : file.sets) {
    std::string prefix = "L";  // built by appending: GCC 12 warns falsely on "L" + std::string&&
    prefix += std::to_string(set.layer) + "_" + kindName(set.kind);
    const bool perHead = set.codebooks.size() > 1 || file.config.perHead;
    for (size_t q = 0; q < set.codebooks.size(); ++q) {
      const Codebooks& b = set.codebooks[q];
      const std::string name =
          perHead ? prefix + "_head" + std::to_string(q) + "_codebooks" : prefix + "_codebooks";
      npz.addFloat32(name, {b.depth, b.size, b.dim}, b.data.data());
    }
    const auto d = static_cast<int64_t>(set.channelOrder.size());
    npz.addInt32(prefix + "_channel_order", {d}, set.channelOrder.data());
    if (!set.channelWeights.empty())
      npz.addFloat32(prefix + "_channel_weights", {d}, set.channelWeights.data());
    if (!set.channelMeans.empty()) {
      const auto heads = static_cast<int64_t>(set.channelMeans.size()) / d;
      npz.addFloat32(prefix + "_channel_means", {heads, d}, set.channelMeans.data());
    }
  }
  nlohmann::json config = nlohmann::json::parse(configToJson(file.config));
  config["kvq_format"] = kCodebookFormat;
  config["kvq_format_version"] = kCodebookFormatVersion;
  config["source_dump"] = file.sourceDump;
  if (!file.alsoTrainedOn.empty()) config["also_trained_on"] = file.alsoTrainedOn;
  config["model"] = file.model;
  config["head_dim"] = file.headDim;
  config["num_kv_heads"] = file.numKvHeads;
  const std::string configText = config.dump(-1, ' ', true);  // ASCII: \u escapes
  npz.addString("config", configText);
  npz.write(path);
}

}  // namespace kvq
