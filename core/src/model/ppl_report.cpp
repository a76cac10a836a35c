#include "kvq/model/ppl_report.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/json_number.h"

namespace kvq {

namespace {

using nlohmann::json;

json statsJson(const TokenStats& s, bool withKl) {
  json j = {{"tokens", s.tokens},
            {"perplexity", finiteOrNull(s.perplexity())},
            {"mean_nll", finiteOrNull(s.tokens ? s.nll / s.tokens : 0.0)}};
  if (withKl) {
    j["mean_kl"] = finiteOrNull(s.meanKl());
    j["top1_agreement"] = finiteOrNull(s.top1Rate());
  }
  return j;
}

json sequencesJson(const std::vector<TokenStats>& seqs, bool withKl) {
  json a = json::array();
  for (const TokenStats& s : seqs) a.push_back(statsJson(s, withKl));
  return a;
}

std::string csvRow(const std::string& variant, const std::string& sequence, const TokenStats& s, double bits,
                   bool withKl) {
  char buf[256];
  if (withKl) {
    std::snprintf(buf, sizeof buf, "%s,%s,%lld,%.6g,%.9g,%.9g,%.9g\n", variant.c_str(), sequence.c_str(),
                  static_cast<long long>(s.tokens), bits, s.perplexity(), s.meanKl(), s.top1Rate());
  } else {
    std::snprintf(buf, sizeof buf, "%s,%s,%lld,%.6g,%.9g,,\n", variant.c_str(), sequence.c_str(),
                  static_cast<long long>(s.tokens), bits, s.perplexity());
  }
  return buf;
}

}  // namespace

const char* variantKindName(CacheVariantKind kind) {
  switch (kind) {
    case CacheVariantKind::Identity:
      return "identity";
    case CacheVariantKind::Rvq:
      return "rvq";
    case CacheVariantKind::Kivi:
      return "kivi";
  }
  return "?";
}

std::string pplReportJson(const PplReport& r) {
  json j;
  j["dump"] = r.dumpPath;
  j["model"] = r.modelPath;
  j["model_name"] = r.modelName;
  if (!r.codebookPath.empty()) j["codebooks"] = r.codebookPath;
  j["quantized_layers"] = r.layers;
  j["sequence_starts"] = r.sequenceStarts;
  j["sequence_tokens"] = r.sequenceTokens;
  j["reference"] = statsJson(r.reference, false);
  j["reference"]["bits_per_channel"] = 16.0;
  j["reference"]["sequences"] = sequencesJson(r.referenceSequences, false);
  json variants = json::array();
  for (const VariantReport& v : r.variants) {
    json e = statsJson(v.overall, true);
    e["label"] = v.label;
    e["kind"] = variantKindName(v.spec.kind);
    e["sinks"] = v.spec.sinks;
    e["window"] = v.spec.window;
    e["bits_per_channel"] = finiteOrNull(v.bitsPerChannel);
    e["sequences"] = sequencesJson(v.sequences, true);
    variants.push_back(e);
  }
  j["variants"] = variants;
  json agreement = json::array();
  for (const DumpAgreement& a : r.agreement) {
    agreement.push_back({{"layer", a.layer},
                         {"kind", kindName(a.kind)},
                         {"relative_error", finiteOrNull(a.relativeError)},
                         {"max_abs_error", finiteOrNull(a.maxAbsError)}});
  }
  j["dump_agreement"] = agreement;
  if (!r.backend.empty()) j["rvq_backend"] = r.backend;
  if (!r.passEngine.empty()) j["pass_engine"] = r.passEngine;
  j["seconds"] = r.seconds;
  return j.dump(2) + "\n";
}

std::string pplReportCsv(const PplReport& r) {
  std::string out = "variant,sequence,tokens,bits_per_channel,perplexity,mean_kl,top1_agreement\n";
  for (size_t s = 0; s < r.referenceSequences.size(); ++s) {
    out += csvRow("reference", std::to_string(s), r.referenceSequences[s], 16.0, false);
  }
  out += csvRow("reference", "all", r.reference, 16.0, false);
  for (const VariantReport& v : r.variants) {
    for (size_t s = 0; s < v.sequences.size(); ++s)
      out += csvRow(v.label, std::to_string(s), v.sequences[s], v.bitsPerChannel, true);
    out += csvRow(v.label, "all", v.overall, v.bitsPerChannel, true);
  }
  return out;
}

std::string pplReportTable(const PplReport& r) {
  std::ostringstream out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-14s %8s %12s %12s %10s\n", "variant", "bits/ch", "perplexity", "mean KL",
                "top-1");
  out << buf;
  std::snprintf(buf, sizeof buf, "%-14s %8.3f %12.4f %12s %10s\n", "reference", 16.0,
                r.reference.perplexity(), "-", "-");
  out << buf;
  for (const VariantReport& v : r.variants) {
    std::snprintf(buf, sizeof buf, "%-14s %8.3f %12.4f %12.6f %9.2f%%\n", v.label.c_str(), v.bitsPerChannel,
                  v.overall.perplexity(), v.overall.meanKl(), 100.0 * v.overall.top1Rate());
    out << buf;
  }
  if (!r.agreement.empty()) {
    double worst = 0;
    for (const DumpAgreement& a : r.agreement) worst = std::max(worst, a.relativeError);
    std::snprintf(buf, sizeof buf,
                  "reference vs the dump's %zu stored layer/kind sets: worst relative error %.3g\n",
                  r.agreement.size(), worst);
    out << buf;
  }
  return out.str();
}

}  // namespace kvq
