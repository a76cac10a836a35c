#include "io/allocation_group.h"

#include <algorithm>
#include <cmath>

#include "h5/hdf5_util.h"
#include "kvq/base/error.h"

namespace kvq::io {

namespace {
constexpr const char* kGroup = "/allocation";
}

void writeAllocationGroup(h5::Writer& w, const CacheAllocation& a) {
  h5::Group g = w.createGroups(kGroup);
  const hid_t id = g.get();
  h5::writeAttr(id, "budget_bits_per_channel", a.budget);
  h5::writeAttr(id, "bits_per_channel", a.bitsPerChannel);
  h5::writeAttr(id, "loss", a.loss);
  h5::writeAttr(id, "loss_name", a.lossName);
  h5::writeAttr(id, "method", a.method);
  h5::writeAttr(id, "context_tokens", a.contextTokens);
  h5::writeAttr(id, "amortise_tokens", a.amortiseTokens);
  h5::writeAttr(id, "sinks", static_cast<int64_t>(a.sinks));
  h5::writeAttr(id, "window", static_cast<int64_t>(a.window));
  h5::writeAttr(id, "items", static_cast<int64_t>(a.layers.size()));
  std::vector<int32_t> kinds;
  for (Kind k : a.kinds) kinds.push_back(k == Kind::Keys ? 0 : 1);
  const std::vector<hsize_t> shape{static_cast<hsize_t>(a.layers.size())};
  w.writeInt32(id, "layer", shape, a.layers.data());
  w.writeInt32(id, "kind", shape, kinds.data());
  w.writeInt32(id, "depth", shape, a.depths.data());
  h5::writeAttr(id, "item_bits_per_channel", a.bits);
  h5::writeAttr(id, "item_loss", a.losses);
}

std::optional<CacheAllocation> readAllocationGroup(const h5::Reader& r, const CodebookFile& file) {
  if (!h5::linkExists(r.root(), "allocation")) return std::nullopt;
  const h5::Group g = r.openGroup(kGroup);
  const hid_t id = g.get();
  CacheAllocation a;
  a.budget = r.doubleAttr(id, "budget_bits_per_channel");
  a.bitsPerChannel = r.doubleAttr(id, "bits_per_channel");
  a.loss = r.doubleAttr(id, "loss");
  a.lossName = r.stringAttr(id, "loss_name");
  a.method = r.stringAttr(id, "method");
  a.contextTokens = r.intAttr(id, "context_tokens");
  a.amortiseTokens = r.intAttr(id, "amortise_tokens");
  a.sinks = static_cast<int>(std::clamp<int64_t>(r.intAttr(id, "sinks"), 0, 1 << 30));
  a.window = static_cast<int>(std::clamp<int64_t>(r.intAttr(id, "window"), 0, 1 << 30));
  const int64_t items = r.intAttr(id, "items");
  const auto& sets = file.sets;
  if (items < 1 || items > static_cast<int64_t>(sets.size())) {
    throwBadInput(r.path(), std::string(kGroup) + " items", "must be 1..the file's quantizers");
  }
  const std::vector<hsize_t> shape{static_cast<hsize_t>(items)};
  a.layers = r.readInt32(std::string(kGroup) + "/layer", shape, "items");
  const std::vector<int> kinds = r.readInt32(std::string(kGroup) + "/kind", shape, "items");
  a.depths = r.readInt32(std::string(kGroup) + "/depth", shape, "items");
  a.bits = r.doubleArrayAttr(id, "item_bits_per_channel");
  a.losses = r.doubleArrayAttr(id, "item_loss");
  if (a.bits.size() != shape[0] || a.losses.size() != shape[0]) {
    throwBadInput(r.path(), std::string(kGroup) + " item_bits_per_channel, item_loss",
                  "must hold one value per item");
  }
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const std::string where = std::string(kGroup) + " item " + std::to_string(i);
    if (kinds[i] != 0 && kinds[i] != 1) throwBadInput(r.path(), where, "kind must be 0 (keys) or 1 (values)");
    a.kinds.push_back(kinds[i] == 0 ? Kind::Keys : Kind::Values);
    if (a.depths[i] < 1 || a.depths[i] > file.config.depth) {
      throwBadInput(r.path(), where, "depth outside 1..K of the file");
    }
    const bool known = std::any_of(sets.begin(), sets.end(), [&](const QuantizerSet& s) {
      return s.layer == a.layers[i] && s.kind == a.kinds[i];
    });
    if (!known) throwBadInput(r.path(), where, "the file has no quantizer for this layer and kind");
  }
  return a;
}

}  // namespace kvq::io
