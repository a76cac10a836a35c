#include "kvq/model/perplexity.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>

#include "kvq/base/error.h"
#include "kvq/model/decoder_pass.h"
#include "kvq/model/rope.h"
#include "kvq/rvq/backend_registry.h"
#include "model/fast_exp.h"

namespace kvq {

double TokenStats::perplexity() const {
  return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0;
}
double TokenStats::meanKl() const {
  return tokens > 0 ? kl / static_cast<double>(tokens) : 0.0;
}
double TokenStats::top1Rate() const {
  return tokens > 0 ? static_cast<double>(top1) / static_cast<double>(tokens) : 0.0;
}
void TokenStats::add(const TokenStats& o) {
  tokens += o.tokens;
  nll += o.nll;
  kl += o.kl;
  top1 += o.top1;
}

void checkModelMatchesDump(const DecoderModel& model, const DumpReader& dump) {
  const DumpInfo& info = dump.info();
  const ModelConfig& c = model.config;
  auto mismatch = [&](const std::string& attr, int dumpValue, int modelValue) {
    throwBadInput(info.path, "/ " + attr,
                  "the dump says " + std::to_string(dumpValue) + " but the model " + model.path + " has " +
                      std::to_string(modelValue) + ": not the model this dump was made with");
  };
  if (info.numLayers != c.numLayers) mismatch("num_layers", info.numLayers, c.numLayers);
  if (info.numKvHeads != c.numKvHeads) mismatch("num_kv_heads", info.numKvHeads, c.numKvHeads);
  if (info.headDim != c.headDim) mismatch("head_dim", info.headDim, c.headDim);
  // An interleaved dump's channel order depends on how many channels rotate.
  if (info.ropeLayout == "interleaved" && info.ropeDim && *info.ropeDim != c.rope.dim)
    mismatch("rope_dim", *info.ropeDim, c.rope.dim);
  if (!info.hasTokenIds) {
    throwBadInput(info.path, "/tokens",
                  "the dump holds no token ids, so the model cannot be run on its text");
  }
}

std::vector<int> quantizedLayers(const PplOptions& options, int numLayers) {
  std::set<int> layers(options.layers.begin(), options.layers.end());
  if (layers.empty() && options.codebooks != nullptr) {
    std::map<int, int> kinds;
    for (const QuantizerSet& s : options.codebooks->sets) {
      if (s.kind == Kind::Keys || s.kind == Kind::Values) ++kinds[s.layer];
    }
    for (auto [layer, n] : kinds) {
      if (n == 2) layers.insert(layer);
    }
  }
  if (layers.empty() && options.layers.empty() && options.codebooks == nullptr) {
    for (int l = 0; l < numLayers; ++l) layers.insert(l);
  }
  for (int l : layers) {
    if (l < 0 || l >= numLayers) {
      throwBadInput(
          "", "layers",
          "layer " + std::to_string(l) + " outside the model's 0.." + std::to_string(numLayers - 1));
    }
  }
  return {layers.begin(), layers.end()};
}

namespace {

// Per stored layer and kind: sum of squared errors, sum of squared stored values, max |error|.
using AgreementSums = std::map<std::pair<int, Kind>, std::array<double, 3>>;

// Hands `inner` the keys of a layer in the dump's channel order (its rope_layout) and puts
// them back in the pass's Hugging Face order afterwards, so that what reads or replaces the
// keys — the agreement check, codebooks trained on the dump (their channel groups and weights)
// — sees the channels where the dump has them. Values have no rotary layout.
class InDumpChannelOrder final : public KvCacheHook {
 public:
  // dumpChannel: channelsInLayout of the dump's layout, [D]
  InDumpChannelOrder(KvCacheHook& inner, const std::vector<int>& dumpChannel, int heads)
      : m_inner(inner), m_at(dumpChannel), m_heads(heads) {
    for (size_t c = 0; c < m_at.size(); ++c) m_same = m_same && m_at[c] == static_cast<int>(c);
  }

  void apply(int layer, int64_t tokens, float* keys, float* values) override {
    if (m_same) {
      m_inner.apply(layer, tokens, keys, values);
      return;
    }
    const auto d = static_cast<int64_t>(m_at.size());
    const int64_t rows = tokens * m_heads;
    m_keys.resize(static_cast<size_t>(rows * d));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < d; ++c)
        m_keys[static_cast<size_t>(r * d + m_at[static_cast<size_t>(c)])] = keys[r * d + c];
    }
    m_inner.apply(layer, tokens, m_keys.data(), values);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < d; ++c)
        keys[r * d + c] = m_keys[static_cast<size_t>(r * d + m_at[static_cast<size_t>(c)])];
    }
  }
  int recentWindow(int layer) const override { return m_inner.recentWindow(layer); }
  bool slidingKeyWindow(int layer) const override { return m_inner.slidingKeyWindow(layer); }

 private:
  KvCacheHook& m_inner;
  const std::vector<int>& m_at;
  int m_heads;
  bool m_same = true;  // the dump keeps the pass's order (rope_layout "half")
  std::vector<float> m_keys;
};

// Compares the reference pass's keys/values with the layers the dump stores; keys arrive in the
// dump's channel order (InDumpChannelOrder), and are rotated in its layout when it stores them
// after RoPE.
class AgreementHook : public KvCacheHook {
 public:
  AgreementHook(const DumpReader& dump, std::vector<double> invFreq, RopeLayout layout, int64_t begin)
      : m_dump(dump), m_invFreq(std::move(invFreq)), m_layout(layout), m_begin(begin) {}

  void apply(int layer, int64_t tokens, float* keys, float* values) override {
    if (!m_dump.has(layer, Kind::Keys)) return;
    const DumpInfo& info = m_dump.info();
    std::vector<float> rotated;
    const float* k = keys;
    if (info.keyRope == "post") {  // the dump stores keys after RoPE: rotate a copy
      rotated.assign(keys, keys + tokens * info.numKvHeads * info.headDim);
      applyRope(rotated.data(), tokens, info.numKvHeads, info.headDim,
                static_cast<int64_t>(info.numKvHeads) * info.headDim, 0, m_invFreq, m_layout);
      k = rotated.data();
    }
    compare(layer, Kind::Keys, k, tokens);
    compare(layer, Kind::Values, values, tokens);
  }

  AgreementSums sums;

 private:
  void compare(int layer, Kind kind, const float* x, int64_t tokens) {
    const Slab stored = m_dump.read(layer, kind, m_begin, tokens);
    auto& s = sums[{layer, kind}];
    for (size_t i = 0; i < stored.data.size(); ++i) {
      const double e = static_cast<double>(x[i]) - stored.data[i];
      s[0] += e * e;
      s[1] += static_cast<double>(stored.data[i]) * stored.data[i];
      s[2] = std::max(s[2], std::abs(e));
    }
  }

  const DumpReader& m_dump;
  std::vector<double> m_invFreq;
  RopeLayout m_layout;
  int64_t m_begin;
};

// Reference statistics of one row of logits, kept for the variants' KL.
struct RowRef {
  double logZ = 0;
  int32_t argmax = 0;
};

int32_t argmaxOf(const float* l, int64_t n) {
  return static_cast<int32_t>(std::max_element(l, l + n) - l);
}

// log of the sum of exp over a row; scratch: [n].
double logSumExp(const float* l, int64_t n, float* scratch) {
  const float mx = *std::max_element(l, l + n);
  return mx + std::log(model::expShiftedSum(l, n, mx, scratch));
}

class HeadScorer {
 public:
  HeadScorer(const DecoderPass& pass, int64_t chunk) : m_pass(pass) {
    const auto v = static_cast<size_t>(pass.model().config.vocab);
    m_ref.resize(static_cast<size_t>(chunk) * v);
    m_prob.resize(m_ref.size());
    m_var.resize(m_ref.size());
  }

  // Scores predictions of rows [r0, r0 + rows): the reference, then each variant.
  //   hRef, hVar[v]: [n, hidden] final hidden states; tokens: [n]
  void score(const float* hRef, const std::vector<std::vector<float>>& hVar, const int32_t* tokens,
             int64_t r0, int64_t rows, TokenStats& ref, std::vector<TokenStats>& var) {
    const int64_t vocab = m_pass.model().config.vocab, hidden = m_pass.model().config.hidden;
    m_pass.logits(hRef + r0 * hidden, rows, m_ref.data());
    std::vector<RowRef> rowRef(static_cast<size_t>(rows));
    double nll = 0;
#pragma omp parallel for schedule(static) reduction(+ : nll)
    for (int64_t r = 0; r < rows; ++r) {
      const float* l = m_ref.data() + r * vocab;
      float* p = m_prob.data() + r * vocab;
      const float mx = *std::max_element(l, l + vocab);
      const double sum = model::expShiftedSum(l, vocab, mx, p);
      const auto inv = static_cast<float>(1.0 / sum);
      for (int64_t i = 0; i < vocab; ++i) p[i] *= inv;
      rowRef[static_cast<size_t>(r)] = {mx + std::log(sum), argmaxOf(l, vocab)};
      nll += rowRef[static_cast<size_t>(r)].logZ - l[tokens[r0 + r + 1]];
    }
    ref.tokens += rows;
    ref.nll += nll;
    for (size_t v = 0; v < hVar.size(); ++v)
      scoreVariant(hVar[v].data() + r0 * hidden, tokens, r0, rows, rowRef, var[v]);
  }

 private:
  void scoreVariant(const float* h, const int32_t* tokens, int64_t r0, int64_t rows,
                    const std::vector<RowRef>& rowRef, TokenStats& out) {
    const int64_t vocab = m_pass.model().config.vocab;
    m_pass.logits(h, rows, m_var.data());
    double nll = 0, kl = 0;
    int64_t top1 = 0;
#pragma omp parallel reduction(+ : nll, kl, top1)
    {
      std::vector<float> scratch(static_cast<size_t>(vocab));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        const float* lr = m_ref.data() + r * vocab;
        const float* lq = m_var.data() + r * vocab;
        const float* p = m_prob.data() + r * vocab;
        const double logZ = logSumExp(lq, vocab, scratch.data());
        // KL = sum p (log p - log q) = sum p (l_ref - l_q) + (logZ_q - logZ_ref) sum p
        double cross = 0, mass = 0;
        for (int64_t i = 0; i < vocab; ++i) {
          cross += static_cast<double>(p[i]) * static_cast<double>(lr[i] - lq[i]);
          mass += p[i];
        }
        kl += cross + (logZ - rowRef[static_cast<size_t>(r)].logZ) * mass;
        nll += logZ - lq[tokens[r0 + r + 1]];
        top1 += argmaxOf(lq, vocab) == rowRef[static_cast<size_t>(r)].argmax ? 1 : 0;
      }
    }
    out.tokens += rows;
    out.nll += nll;
    out.kl += kl;
    out.top1 += top1;
  }

  const DecoderPass& m_pass;
  std::vector<float> m_ref, m_prob, m_var;
};

struct RunState {
  const DecoderModel& model;
  const DumpReader& dump;
  const PplOptions& options;
  const TaskControl* control;
  std::vector<int> layers;
  std::vector<std::unique_ptr<CacheQuantizer>> quantizers;
  RopeLayout dumpLayout = RopeLayout::Half;
  std::vector<int> dumpChannel;  // channelsInLayout(dumpLayout): where the dump keeps each key channel
  AgreementSums agreement;
  int64_t unitsDone = 0, unitsTotal = 1;

  void step(const std::string& stage) {
    ++unitsDone;
    reportProgress(control, static_cast<double>(unitsDone) / static_cast<double>(unitsTotal), stage);
    checkCancel(control);
  }
};

// One sequence: the reference pass, each variant from the first quantized layer on, the head.
void evaluateSequence(RunState& st, DecoderPass& pass, const int32_t* tokens, int64_t n, int64_t begin,
                      PplReport& report) {
  const ModelConfig& c = st.model.config;
  const int firstQ = st.layers.empty() ? c.numLayers : st.layers.front();
  const std::string label = "sequence " + std::to_string(report.referenceSequences.size() + 1);
  std::vector<float> x(static_cast<size_t>(n * c.hidden)), saved;
  pass.embed(tokens, n, x.data());
  AgreementHook agreement(st.dump, ropeInverseFrequencies(c.rope), st.dumpLayout, begin);
  InDumpChannelOrder checked(agreement, st.dumpChannel, c.numKvHeads);
  for (int layer = 0; layer < c.numLayers; ++layer) {
    if (layer == firstQ) saved = x;
    pass.runLayers(x.data(), n, layer, layer + 1, st.options.checkDump ? &checked : nullptr, st.control);
    st.step(label + ": reference");
  }
  pass.finalNorm(x.data(), n);
  std::vector<std::vector<float>> hVar(st.quantizers.size());
  for (size_t v = 0; v < st.quantizers.size(); ++v) {
    hVar[v] = saved;
    InDumpChannelOrder quantizer(*st.quantizers[v], st.dumpChannel, c.numKvHeads);
    for (int layer = firstQ; layer < c.numLayers; ++layer) {
      pass.runLayers(hVar[v].data(), n, layer, layer + 1, &quantizer, st.control);
      st.step(label + ": " + report.variants[v].label);
    }
    pass.finalNorm(hVar[v].data(), n);
  }
  TokenStats ref;
  std::vector<TokenStats> var(st.quantizers.size());
  // Rows of logits per head product: 128 x 49 152 reach 127 GFLOP/s on 2 cores where 64 rows reach
  // 105 (the head's weights are read once per chunk); three such buffers are 75 MB for SmolLM2.
  constexpr int64_t kChunk = 128;
  HeadScorer scorer(pass, kChunk);
  for (int64_t r0 = 0; r0 < n - 1; r0 += kChunk) {
    scorer.score(x.data(), hVar, tokens, r0, std::min(kChunk, n - 1 - r0), ref, var);
    checkCancel(st.control);
  }
  st.step(label + ": output head");
  report.reference.add(ref);
  report.referenceSequences.push_back(ref);
  for (size_t v = 0; v < var.size(); ++v) {
    report.variants[v].overall.add(var[v]);
    report.variants[v].sequences.push_back(var[v]);
  }
  for (const auto& [key, s] : agreement.sums) {
    auto& total = st.agreement[key];
    total[0] += s[0];
    total[1] += s[1];
    total[2] = std::max(total[2], s[2]);
  }
}

// The cache quantizer of every variant (and the RVQ backend they share, when one needs it).
std::unique_ptr<Backend> makeQuantizers(RunState& st, PplReport& report) {
  const PplOptions& options = st.options;
  const ModelConfig& c = st.model.config;
  const DumpReader& dump = st.dump;
  std::unique_ptr<Backend> backend;
  const std::set<int> layerSet(st.layers.begin(), st.layers.end());
  for (const CacheVariantSpec& spec : options.variants) {
    validateCacheVariant(spec, options.codebooks, c.headDim);
    if (spec.kind == CacheVariantKind::Rvq && !backend) {
      if (dump.info().keyRope == "post") {
        throwBadInput(
            dump.info().path, "/ key_rope",
            "RVQ variants quantize pre-RoPE keys; codebooks trained on this post-RoPE dump do not apply");
      }
      std::string note;
      backend = makeBackend(options.backend, options.threads, &note);
      report.backend = backend->name();
    }
    st.quantizers.push_back(std::make_unique<CacheQuantizer>(
        spec, layerSet, c.numKvHeads, c.headDim, options.codebooks, options.codebookPath, backend.get()));
    report.variants.push_back({spec, spec.label(), 0.0, {}, {}});
  }
  return backend;
}

}  // namespace

PplReport evaluatePerplexity(const DecoderModel& model, const DumpReader& dump, const PplOptions& options,
                             const TaskControl* control) {
  const auto start = std::chrono::steady_clock::now();
  checkModelMatchesDump(model, dump);
  const ModelConfig& c = model.config;
  RunState st{model, dump, options, control, quantizedLayers(options, c.numLayers), {}, RopeLayout::Half,
              {},    {},   0,       1};
  st.dumpLayout = parseRopeLayout(dump.info().ropeLayout, "rope_layout");
  st.dumpChannel = channelsInLayout(st.dumpLayout, c.rope.dim, c.headDim);
  PplReport report;
  report.dumpPath = dump.info().path;
  report.modelPath = model.path;
  report.modelName = c.name;
  report.codebookPath = options.codebookPath;
  report.layers = st.layers;
  const std::vector<int32_t> ids = dump.tokenIds();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= c.vocab) {
      throwBadInput(dump.info().path, "/tokens[" + std::to_string(i) + "]",
                    "token id " + std::to_string(ids[i]) + " outside the model's vocabulary 0.." +
                        std::to_string(c.vocab - 1));
    }
  }
  std::vector<int64_t> starts = dump.info().sequenceStarts;
  if (starts.empty()) starts.push_back(0);
  std::unique_ptr<Backend> backend = makeQuantizers(st, report);
  const int firstQ = st.layers.empty() ? c.numLayers : st.layers.front();
  const int64_t perSequence =
      c.numLayers + static_cast<int64_t>(st.quantizers.size()) * (c.numLayers - firstQ) + 1;
  st.unitsTotal = perSequence * static_cast<int64_t>(starts.size());
  const auto gemm = makeWeightGemm(options.backend, model, {options.allowTf32}, &report.passNote);
  report.passEngine = gemm->name();
  DecoderPass pass(model, gemm.get());
  std::vector<double> bitsWeighted(st.quantizers.size(), 0.0);
  for (size_t s = 0; s < starts.size(); ++s) {
    const int64_t end = s + 1 < starts.size() ? starts[s + 1] : static_cast<int64_t>(ids.size());
    int64_t n = end - starts[s];
    if (options.maxTokens > 0) n = std::min(n, options.maxTokens);
    report.sequenceStarts.push_back(starts[s]);
    report.sequenceTokens.push_back(n);
    evaluateSequence(st, pass, ids.data() + starts[s], n, starts[s], report);
    for (size_t v = 0; v < st.quantizers.size(); ++v) {
      bitsWeighted[v] += cacheBitsPerChannel(options.variants[v], options.codebooks, st.layers,
                                             {n, options.amortiseTokens}) *
                         static_cast<double>(n);
    }
  }
  int64_t total = 0;
  for (int64_t n : report.sequenceTokens) total += n;
  for (size_t v = 0; v < st.quantizers.size(); ++v)
    report.variants[v].bitsPerChannel = bitsWeighted[v] / static_cast<double>(total);
  for (const auto& [key, s] : st.agreement) {
    report.agreement.push_back(
        {key.first, key.second, s[1] > 0 ? std::sqrt(s[0] / s[1]) : std::sqrt(s[0]), s[2]});
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace kvq
