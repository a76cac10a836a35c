// The `kvq ppl --json` report read back (kvq/model/ppl_report.h): a hand-made report survives the
// round trip through JSON, and text that is not such a report is refused naming the field.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "kvq/base/error.h"
#include "kvq/model/ppl_report.h"

namespace kvq {
namespace {

TokenStats handStats(int64_t tokens, double nll, double kl, int64_t top1) {
  TokenStats s;
  s.tokens = tokens;
  s.nll = nll;
  s.kl = kl;
  s.top1 = top1;
  return s;
}

PplReport handReport() {
  PplReport r;
  r.dumpPath = "eval.h5";
  r.modelPath = "m.gguf";
  r.modelName = "tiny";
  r.codebookPath = "alloc.h5";
  r.layers = {0, 2};
  r.sequenceStarts = {0, 40};
  r.sequenceTokens = {40, 30};
  r.referenceSequences = {handStats(39, 78.0, 0, 0), handStats(29, 43.5, 0, 0)};
  r.reference = handStats(68, 121.5, 0, 0);
  VariantReport kivi;
  kivi.spec.kind = CacheVariantKind::Kivi;
  kivi.spec.bits = 2;
  kivi.spec.window = 32;
  kivi.label = kivi.spec.label();
  kivi.bitsPerChannel = 3.40625;
  kivi.sequences = {handStats(39, 80.0, 1.95, 30), handStats(29, 44.0, 0.29, 27)};
  kivi.overall = handStats(68, 124.0, 2.24, 57);
  VariantReport alloc;
  alloc.spec.kind = CacheVariantKind::Rvq;
  alloc.spec.sinks = 4;
  alloc.spec.window = 16;
  alloc.spec.name = "alloc-3.00b";
  alloc.label = alloc.spec.label();
  alloc.bitsPerChannel = 2.989;
  alloc.sequences = {handStats(39, 79.0, 0.39, 36), handStats(29, 43.6, 0.058, 28)};
  alloc.overall = handStats(68, 122.6, 0.448, 64);
  VariantReport identity;
  identity.label = "identity";
  identity.bitsPerChannel = 16;
  identity.sequences = r.referenceSequences;
  identity.overall = r.reference;
  r.variants = {kivi, alloc, identity};
  r.backend = "cpu";
  r.seconds = 12.5;
  return r;
}

TEST(PplReportJson, RoundTripsEveryNumberTheChartAndTablesUse) {
  const PplReport in = handReport();
  const PplReport out = pplReportFromJson(pplReportJson(in), "r.json");
  EXPECT_EQ(out.dumpPath, "eval.h5");
  EXPECT_EQ(out.codebookPath, "alloc.h5");
  EXPECT_EQ(out.layers, in.layers);
  EXPECT_EQ(out.sequenceTokens, in.sequenceTokens);
  EXPECT_EQ(out.reference.tokens, 68);
  EXPECT_NEAR(out.reference.nll, 121.5, 1e-12);
  EXPECT_NEAR(out.reference.perplexity(), in.reference.perplexity(), 1e-12);
  ASSERT_EQ(out.referenceSequences.size(), 2u);
  EXPECT_NEAR(out.referenceSequences[1].nll, 43.5, 1e-12);
  ASSERT_EQ(out.variants.size(), 3u);
  EXPECT_EQ(out.variants[2].spec.kind, CacheVariantKind::Identity);
  EXPECT_EQ(out.variants[0].label, "kivi-2-r32");
  EXPECT_EQ(out.variants[0].spec.kind, CacheVariantKind::Kivi);
  EXPECT_EQ(out.variants[0].spec.window, 32);
  EXPECT_EQ(out.variants[1].label, "alloc-3.00b-s4-r16");
  EXPECT_EQ(out.variants[1].spec.kind, CacheVariantKind::Rvq);
  EXPECT_EQ(out.variants[1].spec.sinks, 4);
  EXPECT_EQ(out.variants[1].spec.window, 16);
  EXPECT_DOUBLE_EQ(out.variants[1].bitsPerChannel, 2.989);
  for (size_t v = 0; v < 2; ++v) {
    const TokenStats& a = in.variants[v].overall;
    const TokenStats& b = out.variants[v].overall;
    EXPECT_EQ(b.tokens, a.tokens);
    EXPECT_NEAR(b.nll, a.nll, 1e-12 * a.nll);
    EXPECT_NEAR(b.kl, a.kl, 1e-12 * a.kl);
    EXPECT_EQ(b.top1, a.top1);
    ASSERT_EQ(out.variants[v].sequences.size(), 2u);
    EXPECT_EQ(out.variants[v].sequences[1].top1, in.variants[v].sequences[1].top1);
  }
  EXPECT_EQ(out.backend, "cpu");
  EXPECT_DOUBLE_EQ(out.seconds, 12.5);
}

// An infinite KL (a quantized distribution that gives a seen token probability 0) is written as
// null and reads back as infinite, not as no loss.
TEST(PplReportJson, AnInfiniteKlReadsBackInfinite) {
  PplReport in = handReport();
  in.variants[0].overall.kl = std::numeric_limits<double>::infinity();
  const std::string text = pplReportJson(in);
  ASSERT_NE(text.find("\"mean_kl\": null"), std::string::npos);
  const TokenStats out = pplReportFromJson(text, "r.json").variants[0].overall;
  EXPECT_EQ(out.kl, std::numeric_limits<double>::infinity());
  EXPECT_EQ(out.top1, 57);
}

// Reports written before variants recorded their kind: a "kivi" label is KIVI, the rest RVQ.
TEST(PplReportJson, OlderReportsWithoutKindsTakeItFromTheLabel) {
  std::string text = pplReportJson(handReport());
  for (const char* kind : {"\"kind\": \"kivi\",", "\"kind\": \"rvq\",", "\"kind\": \"identity\","}) {
    const size_t at = text.find(kind);
    ASSERT_NE(at, std::string::npos) << kind;
    text.erase(at, std::string(kind).size());
  }
  const PplReport out = pplReportFromJson(text, "old.json");
  EXPECT_EQ(out.variants[0].spec.kind, CacheVariantKind::Kivi);
  EXPECT_EQ(out.variants[1].spec.kind, CacheVariantKind::Rvq);
  EXPECT_EQ(out.variants[2].spec.kind, CacheVariantKind::Identity);
}

std::string refusalOf(const std::string& text) {
  try {
    pplReportFromJson(text, "bad.json");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.file(), "bad.json");
    return e.where() + ": " + e.problem();
  }
  return "accepted";
}

TEST(PplReportJson, RefusesTextThatIsNotAReportNamingTheField) {
  const std::string good = pplReportJson(handReport());
  EXPECT_NE(refusalOf("{\"dump\": ").find("not valid JSON"), std::string::npos);
  EXPECT_NE(refusalOf("[1, 2]").find("missing field \"dump\""), std::string::npos);
  std::string noVariants = good;
  noVariants.replace(noVariants.find("\"variants\""), 10, "\"variantz\"");
  EXPECT_NE(refusalOf(noVariants).find("missing field \"variants\""), std::string::npos);
  std::string textBits = good;
  textBits.replace(textBits.find("\"bits_per_channel\": 3.40625"), 27, "\"bits_per_channel\": \"3\"");
  EXPECT_EQ(refusalOf(textBits).rfind("/variants/0/bits_per_channel: not a finite number", 0), 0u)
      << refusalOf(textBits);
  std::string kind = good;
  kind.replace(kind.find("\"kind\": \"rvq\""), 13, "\"kind\": \"pq\"");
  EXPECT_NE(refusalOf(kind).find("/variants/1/kind: \"pq\" is not identity, rvq or kivi"), std::string::npos)
      << refusalOf(kind);
  std::string negative = good;
  negative.replace(negative.find("\"tokens\": 68"), 12, "\"tokens\": -68");
  EXPECT_NE(refusalOf(negative).find("/tokens: not a count"), std::string::npos);
}

}  // namespace
}  // namespace kvq
