// JSON forms of a dump's header and statistics (kvq info --json, the isolated
// validator's events, the statistics cache). The readers trust nothing: see
// kvq/dump/dump_json.h.
#include "kvq/dump/dump_json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "kvq/base/error.h"

namespace kvq {
namespace {

nlohmann::json valueStatsJson(const ValueStats& s) {
  return {{"count", s.count},
          {"mean_abs", s.meanAbs},
          {"std", s.std},
          {"max_abs", s.maxAbs},
          {"excess_kurtosis", s.excessKurtosis}};
}

nlohmann::json kindStatsJson(const KindStats& k) {
  nlohmann::json j = valueStatsJson(k.all);
  nlohmann::json heads = nlohmann::json::array();
  for (const ValueStats& h : k.perHead) heads.push_back(valueStatsJson(h));
  j["per_head"] = std::move(heads);
  j["channel_mean_abs"] = k.channelMeanAbs;
  j["channel_max_abs"] = k.channelMaxAbs;
  j["outlier_channels"] = k.outlierChannels;
  return j;
}

// /query_positions as [begin, end) runs of consecutive tokens (compact for the usual
// "tail of every sequence"); null when queries hold every token or are absent.
nlohmann::json queryRangesJson(const DumpInfo& info) {
  if (info.queryPositions.empty()) return nullptr;
  nlohmann::json ranges = nlohmann::json::array();
  const std::vector<int64_t>& p = info.queryPositions;
  size_t begin = 0;
  for (size_t i = 1; i <= p.size(); ++i) {
    if (i == p.size() || p[i] != p[i - 1] + 1) {
      ranges.push_back({p[begin], p[i - 1] + 1});
      begin = i;
    }
  }
  return ranges;
}

}  // namespace

nlohmann::json dumpHeaderToJson(const DumpInfo& info) {
  nlohmann::json j;
  j["path"] = info.path;
  j["format_version"] = info.formatVersion;
  j["model"] = info.model;
  j["source"] = info.source;
  j["num_layers"] = info.numLayers;
  j["num_kv_heads"] = info.numKvHeads;
  j["head_dim"] = info.headDim;
  j["num_q_heads"] = info.numQHeads > 0 ? nlohmann::json(info.numQHeads) : nlohmann::json(nullptr);
  j["key_rope"] = info.keyRope;
  j["rope_theta"] = info.ropeTheta ? nlohmann::json(*info.ropeTheta) : nlohmann::json(nullptr);
  j["rope_dim"] = info.ropeDim ? nlohmann::json(*info.ropeDim) : nlohmann::json(nullptr);
  j["rope_layout"] = info.ropeLayout;
  j["rope_inv_freq"] = info.ropeInvFreq.empty() ? nlohmann::json(nullptr) : nlohmann::json(info.ropeInvFreq);
  j["attention_scale"] = info.attentionScale ? nlohmann::json(*info.attentionScale) : nlohmann::json(nullptr);
  j["tokens"] = info.tokens;
  j["dtype"] = dtypeName(info.dtype);
  j["layers_present"] = info.layers;
  j["has_queries"] = info.hasQueries;
  j["query_tokens"] = info.queryTokens;
  j["query_positions"] = queryRangesJson(info);
  j["has_token_ids"] = info.hasTokenIds;
  j["sequence_starts"] = info.sequenceStarts;
  return j;
}

nlohmann::json layerStatsToJson(const LayerStats& ls) {
  return {{"layer", ls.layer}, {"keys", kindStatsJson(ls.keys)}, {"values", kindStatsJson(ls.values)}};
}

nlohmann::json dumpInfoToJson(const DumpInfo& info, const std::vector<LayerStats>& stats) {
  nlohmann::json j = dumpHeaderToJson(info);
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerStats& ls : stats) layers.push_back(layerStatsToJson(ls));
  j["layers"] = std::move(layers);
  return j;
}

namespace {

// Strict field access for the JSON readers: every failure is Error(Internal) naming
// the record (`what`) and the field.
class Fields {
 public:
  Fields(const nlohmann::json& j, const std::string& what, std::string prefix = "")
      : m_j(j), m_what(what), m_prefix(std::move(prefix)) {
    if (!j.is_object()) fail("", "is not an object");
  }
  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw Error(ErrorKind::Internal, "", m_what, m_prefix + field + (field.empty() ? "" : " ") + problem);
  }
  const nlohmann::json& at(const char* field) const {
    const auto it = m_j.find(field);
    if (it == m_j.end()) fail(field, "is missing");
    return *it;
  }
  std::string text(const char* field) const {
    const auto& v = at(field);
    if (!v.is_string()) fail(field, "is not a string");
    return v.get<std::string>();
  }
  bool flag(const char* field) const {
    const auto& v = at(field);
    if (!v.is_boolean()) fail(field, "is not a boolean");
    return v.get<bool>();
  }
  int64_t integer(const char* field, int64_t lo, int64_t hi) const {
    return checkInteger(at(field), field, lo, hi);
  }
  int64_t checkInteger(const nlohmann::json& v, const char* field, int64_t lo, int64_t hi) const {
    if (!v.is_number_integer()) fail(field, "is not an integer");
    const auto x = v.get<int64_t>();
    if (x < lo || x > hi) fail(field, "is out of range");
    return x;
  }
  double number(const char* field, bool nonNegative) const {
    return checkNumber(at(field), field, nonNegative);
  }
  double checkNumber(const nlohmann::json& v, const char* field, bool nonNegative) const {
    if (!v.is_number()) fail(field, "is not a number");
    const double x = v.get<double>();
    if (!std::isfinite(x) || (nonNegative && x < 0)) fail(field, "is not a finite number in range");
    return x;
  }
  const nlohmann::json& array(const char* field, size_t size) const {
    const auto& v = at(field);
    if (!v.is_array() || (size != SIZE_MAX && v.size() != size))
      fail(field, "is not an array of the right size");
    return v;
  }

 private:
  const nlohmann::json& m_j;
  const std::string& m_what;
  std::string m_prefix;
};

constexpr int64_t kMaxInt = std::numeric_limits<int>::max();

ValueStats valueStatsFromJson(const Fields& f, int64_t count) {
  ValueStats s;
  s.count = f.integer("count", count, count);
  s.meanAbs = f.number("mean_abs", true);
  s.std = f.number("std", true);
  s.maxAbs = f.number("max_abs", true);
  s.excessKurtosis = f.number("excess_kurtosis", false);
  return s;
}

std::vector<double> doublesFromJson(const Fields& f, const char* field, size_t size) {
  std::vector<double> out;
  for (const auto& v : f.array(field, size)) out.push_back(f.checkNumber(v, field, true));
  return out;
}

KindStats kindStatsFromJson(const nlohmann::json& j, const DumpInfo& info, const std::string& what,
                            const std::string& prefix) {
  const Fields f(j, what, prefix);
  const auto dim = static_cast<size_t>(info.headDim);
  const int64_t perHead = info.tokens * info.headDim;
  KindStats k;
  k.all = valueStatsFromJson(f, perHead * info.numKvHeads);
  for (const auto& h : f.array("per_head", static_cast<size_t>(info.numKvHeads))) {
    k.perHead.push_back(valueStatsFromJson(Fields(h, what, prefix + "per_head "), perHead));
  }
  k.channelMeanAbs = doublesFromJson(f, "channel_mean_abs", dim);
  k.channelMaxAbs = doublesFromJson(f, "channel_max_abs", dim);
  for (const auto& c : f.array("outlier_channels", std::min<size_t>(dim, 8))) {
    const auto channel = static_cast<int>(f.checkInteger(c, "outlier_channels", 0, info.headDim - 1));
    if (std::find(k.outlierChannels.begin(), k.outlierChannels.end(), channel) != k.outlierChannels.end()) {
      f.fail("outlier_channels", "repeats a channel");
    }
    k.outlierChannels.push_back(channel);
  }
  return k;
}

// The runs of queryRangesJson, expanded; each [begin, end) ascending inside [0, T).
std::vector<int64_t> queryPositionsFromJson(const Fields& f, const DumpInfo& info) {
  std::vector<int64_t> positions;
  const auto& ranges = f.at("query_positions");
  if (ranges.is_null()) return positions;
  for (const auto& r : f.array("query_positions", SIZE_MAX)) {
    if (!r.is_array() || r.size() != 2) f.fail("query_positions", "holds a range that is not [begin, end)");
    const int64_t begin = f.checkInteger(r[0], "query_positions",
                                         positions.empty() ? 0 : positions.back() + 1, info.tokens - 1);
    const int64_t end = f.checkInteger(r[1], "query_positions", begin + 1, info.tokens);
    if (static_cast<int64_t>(positions.size()) + (end - begin) > info.queryTokens) {
      f.fail("query_positions", "holds more positions than query_tokens");
    }
    for (int64_t t = begin; t < end; ++t) positions.push_back(t);
  }
  if (static_cast<int64_t>(positions.size()) != info.queryTokens)
    f.fail("query_positions", "does not match query_tokens");
  return positions;
}

std::optional<double> optionalNumber(const Fields& f, const char* field) {
  const auto& v = f.at(field);
  if (v.is_null()) return std::nullopt;
  return f.checkNumber(v, field, true);
}

}  // namespace

DumpInfo dumpHeaderFromJson(const nlohmann::json& j, const std::string& what) {
  const Fields f(j, what);
  DumpInfo info;
  info.path = f.text("path");
  info.formatVersion = static_cast<int>(f.integer("format_version", 1, 1));
  info.model = f.text("model");
  info.source = f.text("source");
  info.numLayers = static_cast<int>(f.integer("num_layers", 1, kMaxInt));
  info.numKvHeads = static_cast<int>(f.integer("num_kv_heads", 1, kMaxInt));
  info.headDim = static_cast<int>(f.integer("head_dim", 1, kMaxInt));
  const auto& q = f.at("num_q_heads");
  info.numQHeads = q.is_null() ? 0 : static_cast<int>(f.checkInteger(q, "num_q_heads", 1, kMaxInt));
  info.keyRope = f.text("key_rope");
  info.ropeTheta = optionalNumber(f, "rope_theta");
  const auto& ropeDim = f.at("rope_dim");
  if (!ropeDim.is_null()) info.ropeDim = static_cast<int>(f.checkInteger(ropeDim, "rope_dim", 1, kMaxInt));
  info.ropeLayout = f.text("rope_layout");
  if (!f.at("rope_inv_freq").is_null()) {
    for (const auto& v : f.array("rope_inv_freq", SIZE_MAX))
      info.ropeInvFreq.push_back(f.checkNumber(v, "rope_inv_freq", true));
  }
  info.attentionScale = optionalNumber(f, "attention_scale");
  info.tokens = f.integer("tokens", 1, std::numeric_limits<int64_t>::max() / 4);
  const std::string dtype = f.text("dtype");
  bool known = false;
  for (DType d : {DType::Float16, DType::BFloat16, DType::Float32}) {
    if (dtype == dtypeName(d)) info.dtype = d, known = true;
  }
  if (!known) f.fail("dtype", "is not a known dtype");
  for (const auto& l : f.array("layers_present", SIZE_MAX)) {
    const auto layer = static_cast<int>(f.checkInteger(l, "layers_present", 0, info.numLayers - 1));
    if (!info.layers.empty() && layer <= info.layers.back()) f.fail("layers_present", "is not ascending");
    info.layers.push_back(layer);
  }
  if (info.layers.empty()) f.fail("layers_present", "is empty");
  info.hasQueries = f.flag("has_queries");
  info.queryTokens = f.integer("query_tokens", 0, info.tokens);
  info.queryPositions = queryPositionsFromJson(f, info);
  info.hasTokenIds = f.flag("has_token_ids");
  for (const auto& s : f.array("sequence_starts", SIZE_MAX)) {
    info.sequenceStarts.push_back(f.checkInteger(s, "sequence_starts", 0, info.tokens - 1));
  }
  return info;
}

LayerStats layerStatsFromJson(const nlohmann::json& j, const DumpInfo& info, const std::string& what) {
  const Fields f(j, what);
  LayerStats ls;
  ls.layer = static_cast<int>(f.integer("layer", 0, kMaxInt));
  if (!std::binary_search(info.layers.begin(), info.layers.end(), ls.layer)) {
    f.fail("layer", "is not a layer of the dump");
  }
  ls.keys = kindStatsFromJson(f.at("keys"), info, what, "keys ");
  ls.values = kindStatsFromJson(f.at("values"), info, what, "values ");
  return ls;
}

}  // namespace kvq
