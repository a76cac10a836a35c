#include "kvq/study/attention_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

namespace kvq {
namespace {

using nlohmann::json;

constexpr KeyRegion kRegions[] = {KeyRegion::Sink, KeyRegion::Recent, KeyRegion::Rest};

std::string fmt(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.9g", v);
  return buffer;
}

json methodToJson(const AttentionMethodResult& m, bool perHead) {
  json j = {{"method", m.method}, {"bits_per_channel", m.bitsPerChannel}};
  if (m.method == "rvq") j["depth"] = m.depth;
  if (m.method == "kivi" || m.method == "kivi-window") j["bits"] = m.bits;
  j.update(attentionSumsToJson(m.total));
  if (perHead) {
    j["per_head"] = json::array();
    for (const AttentionSums& s : m.perHead) j["per_head"].push_back(attentionSumsToJson(s));
  }
  return j;
}

// The distinct (method, depth or bits) of a result, in the order of its first layer.
std::vector<std::pair<std::string, int>> methodKeys(const AttentionResult& r) {
  std::vector<std::pair<std::string, int>> keys;
  for (const LayerAttentionResult& layer : r.layers) {
    for (const AttentionMethodResult& m : layer.methods) {
      const std::pair<std::string, int> key{m.method, m.method == "rvq" ? m.depth : m.bits};
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
    }
  }
  return keys;
}

// Appends ",v" for each value (appended piecewise: "," + std::string&& trips GCC 12's
// false -Wrestrict).
void appendCells(std::string& out, std::initializer_list<std::string> cells) {
  for (const std::string& c : cells) out.append(",").append(c);
}

std::string attentionCells(const AttentionSums& s) {
  std::string out;
  appendCells(out, {fmt(s.outputRelativeError()), fmt(s.meanKl()), fmt(s.logitRelativeError()),
                    fmt(s.massRecall()), std::to_string(s.queries)});
  for (KeyRegion r : kRegions) {
    appendCells(out, {fmt(s.regionMassShare(r)), fmt(s.regionOutputError(r)), fmt(s.regionMeanKl(r)),
                      fmt(s.regionLogitError(r)), fmt(s.regionRecall(r))});
  }
  return out;
}

// One CSV row in the study table's columns plus the attention columns.
std::string csvRow(const std::string& layer, const std::string& head, const AttentionMethodResult& m,
                   const AttentionSums& s, int codebookSize) {
  const bool rvq = m.method == "rvq";
  std::string row = layer;
  appendCells(row,
              {"attention", head, m.method, rvq ? std::to_string(codebookSize) : "",
               rvq ? std::to_string(m.depth) : "", m.bits > 0 ? std::to_string(m.bits) : "", "",
               fmt(m.bitsPerChannel), fmt(16.0 / m.bitsPerChannel), "", "", "", std::to_string(s.queries)});
  return row.append(attentionCells(s)).append("\n");
}

void appendRows(std::string& out, const std::string& layer, const AttentionMethodResult& m,
                int codebookSize) {
  out += csvRow(layer, "all", m, m.total, codebookSize);
  for (size_t h = 0; h < m.perHead.size(); ++h)
    out += csvRow(layer, std::to_string(h), m, m.perHead[h], codebookSize);
}

}  // namespace

json attentionSumsToJson(const AttentionSums& s) {
  json j = {{"output_relative_error", s.outputRelativeError()},
            {"kl_mean", s.meanKl()},
            {"logit_relative_error", s.logitRelativeError()},
            {"mass_recall", s.massRecall()},
            {"queries", s.queries},
            {"keys", s.keys},
            {"output_error_energy", s.outputErrorEnergy},
            {"output_energy", s.outputEnergy},
            {"kl_sum", s.kl},
            {"logit_error_energy", s.logitErrorEnergy},
            {"logit_energy", s.logitEnergy},
            {"recalled_mass", s.recalledMass}};
  json regions = json::object();
  for (KeyRegion r : kRegions) {
    const RegionSums& g = s.regions[static_cast<size_t>(r)];
    regions[keyRegionName(r)] = {{"mass_share", s.regionMassShare(r)},
                                 {"output_error", s.regionOutputError(r)},
                                 {"kl_mean", s.regionMeanKl(r)},
                                 {"logit_relative_error", s.regionLogitError(r)},
                                 {"recall", s.regionRecall(r)},
                                 {"keys", g.keys},
                                 {"mass", g.mass},
                                 {"recalled_mass", g.recalledMass},
                                 {"kl_sum", g.kl},
                                 {"logit_error_energy", g.logitErrorEnergy},
                                 {"logit_energy", g.logitEnergy},
                                 {"output_error_energy", g.outputErrorEnergy}};
  }
  j["regions"] = regions;
  return j;
}

json attentionToJson(const AttentionResult& r) {
  json kinds = json::array();
  for (Kind k : r.quantizedKinds) kinds.push_back(kindName(k));
  json j = {{"scale", r.scale},
            {"rope", r.rope},
            {"queries_per_layer", r.options.queriesPerLayer},
            {"top_k", r.options.topK},
            {"recent_window", r.options.recentWindow},
            {"quantized_kinds", kinds}};
  j["layers"] = json::array();
  for (const LayerAttentionResult& layer : r.layers) {
    json lj = {{"layer", layer.layer},
               {"candidates", layer.candidates},
               {"query_tokens", layer.queryTokens},
               {"seconds", layer.seconds}};
    lj["methods"] = json::array();
    for (const AttentionMethodResult& m : layer.methods) lj["methods"].push_back(methodToJson(m, true));
    j["layers"].push_back(lj);
  }
  j["totals"] = json::array();
  for (const auto& [method, n] : methodKeys(r)) j["totals"].push_back(methodToJson(r.total(method, n), true));
  return j;
}

std::string attentionCsvColumns() {
  std::string cols = ",attn_output_error,attn_kl,attn_logit_error,attn_mass_recall,attn_queries";
  for (KeyRegion r : kRegions) {
    for (const char* what : {"mass", "output_error", "kl", "logit_error", "recall"})
      cols.append(",attn_").append(keyRegionName(r)).append("_").append(what);
  }
  return cols;
}

std::string withAttentionCsv(const std::string& csv, const AttentionResult& r, int codebookSize) {
  const std::string columns = attentionCsvColumns();
  const std::string empty(static_cast<size_t>(std::count(columns.begin(), columns.end(), ',')), ',');
  std::string out;
  bool header = true;
  size_t begin = 0;
  while (begin < csv.size()) {  // every line of the table, widened
    const size_t end = csv.find('\n', begin);
    out.append(csv, begin, end - begin).append(header ? columns : empty).append("\n");
    header = false;
    begin = end == std::string::npos ? csv.size() : end + 1;
  }
  for (const LayerAttentionResult& layer : r.layers) {
    for (const AttentionMethodResult& m : layer.methods)
      appendRows(out, std::to_string(layer.layer), m, codebookSize);
  }
  for (const auto& [method, n] : methodKeys(r)) appendRows(out, "all", r.total(method, n), codebookSize);
  return out;
}

}  // namespace kvq
