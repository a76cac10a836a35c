// pplReportFromJson: a `kvq ppl --json` report read back (the studio's Model impact view charts
// several of them side by side).
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "kvq/base/error.h"
#include "kvq/model/ppl_report.h"

namespace kvq {

namespace {

using nlohmann::json;

class ReportReader {
 public:
  explicit ReportReader(std::string path) : m_path(std::move(path)) {}

  const json& member(const json& object, const std::string& key, const std::string& where) const {
    if (!object.is_object() || !object.contains(key)) fail(where, "missing field \"" + key + "\"");
    return object.at(key);
  }

  // A finite number; null (finiteOrNull's mark of a value that was not finite) reads as +infinity
  // when allowed: the only such value pplReportJson writes is a KL divergence that overflowed.
  double number(const json& object, const std::string& key, const std::string& where,
                bool nullIsInfinite = false) const {
    const json& v = member(object, key, where);
    if (v.is_null() && nullIsInfinite) return std::numeric_limits<double>::infinity();
    if (!v.is_number() || !std::isfinite(v.get<double>())) fail(where + "/" + key, "not a finite number");
    return v.get<double>();
  }

  int64_t count(const json& object, const std::string& key, const std::string& where) const {
    const json& v = member(object, key, where);
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(where + "/" + key, "not a count");
    return v.get<int64_t>();
  }

  TokenStats stats(const json& object, const std::string& where, bool withKl) const {
    TokenStats s;
    s.tokens = count(object, "tokens", where);
    const auto n = static_cast<double>(s.tokens);
    s.nll = number(object, "mean_nll", where) * n;
    if (withKl) {
      s.kl = number(object, "mean_kl", where, true) * n;
      s.top1 = std::llround(number(object, "top1_agreement", where) * n);
    }
    return s;
  }

  std::vector<TokenStats> sequences(const json& object, const std::string& where, bool withKl) const {
    const json& a = member(object, "sequences", where);
    if (!a.is_array()) fail(where + "/sequences", "not an array");
    std::vector<TokenStats> out;
    for (size_t i = 0; i < a.size(); ++i) {
      out.push_back(stats(a[i], where + "/sequences/" + std::to_string(i), withKl));
    }
    return out;
  }

  std::string text(const json& object, const std::string& key, const std::string& where) const {
    const json& v = member(object, key, where);
    if (!v.is_string()) fail(where + "/" + key, "not a string");
    return v.get<std::string>();
  }

  template <typename T>
  std::vector<T> integers(const json& object, const std::string& key) const {
    const json& a = member(object, key, "");
    std::vector<T> out;
    if (!a.is_array()) fail("/" + key, "not an array");
    for (const json& v : a) {
      if (!v.is_number_integer()) fail("/" + key, "holds something other than integers");
      out.push_back(v.get<T>());
    }
    return out;
  }

  // Reports written before "kind" was recorded take it from the label ("kivi-…", "identity").
  CacheVariantKind variantKind(const json& v, const std::string& label, const std::string& where) const {
    if (!v.contains("kind")) {
      if (label.rfind("kivi", 0) == 0) return CacheVariantKind::Kivi;
      return label == "identity" ? CacheVariantKind::Identity : CacheVariantKind::Rvq;
    }
    const std::string kind = text(v, "kind", where);
    for (const CacheVariantKind k :
         {CacheVariantKind::Identity, CacheVariantKind::Rvq, CacheVariantKind::Kivi}) {
      if (kind == variantKindName(k)) return k;
    }
    fail(where + "/kind", "\"" + kind + "\" is not identity, rvq or kivi");
  }

  VariantReport variant(const json& v, const std::string& where) const {
    VariantReport r;
    r.label = text(v, "label", where);
    r.spec.kind = variantKind(v, r.label, where);
    if (v.contains("sinks")) r.spec.sinks = static_cast<int>(count(v, "sinks", where));
    if (v.contains("window")) r.spec.window = static_cast<int>(count(v, "window", where));
    r.bitsPerChannel = number(v, "bits_per_channel", where);
    r.overall = stats(v, where, true);
    r.sequences = sequences(v, where, true);
    return r;
  }

  [[noreturn]] void fail(const std::string& where, const std::string& problem) const {
    throwBadInput(m_path, where.empty() ? "/" : where, problem + " (not a kvq ppl --json report?)");
  }

 private:
  std::string m_path;
};

}  // namespace

PplReport pplReportFromJson(const std::string& text, const std::string& path) {
  const ReportReader in(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throwBadInput(path, "", std::string("not valid JSON: ") + e.what());
  }
  PplReport r;
  r.dumpPath = in.text(j, "dump", "");
  r.modelPath = in.text(j, "model", "");
  r.modelName = in.text(j, "model_name", "");
  if (j.contains("codebooks")) r.codebookPath = in.text(j, "codebooks", "");
  r.layers = in.integers<int>(j, "quantized_layers");
  r.sequenceStarts = in.integers<int64_t>(j, "sequence_starts");
  r.sequenceTokens = in.integers<int64_t>(j, "sequence_tokens");
  const json& reference = in.member(j, "reference", "");
  r.reference = in.stats(reference, "/reference", false);
  r.referenceSequences = in.sequences(reference, "/reference", false);
  const json& variants = in.member(j, "variants", "");
  if (!variants.is_array()) in.fail("/variants", "not an array");
  for (size_t i = 0; i < variants.size(); ++i) {
    r.variants.push_back(in.variant(variants[i], "/variants/" + std::to_string(i)));
  }
  if (j.contains("rvq_backend")) r.backend = in.text(j, "rvq_backend", "");
  if (j.contains("pass_engine")) r.passEngine = in.text(j, "pass_engine", "");
  if (j.contains("seconds")) r.seconds = in.number(j, "seconds", "");
  return r;
}

}  // namespace kvq
