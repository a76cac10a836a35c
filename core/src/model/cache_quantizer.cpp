#include "kvq/model/cache_quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kvq/base/error.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/preprocess.h"

namespace kvq {

std::string CacheVariantSpec::label() const {
  std::string exact;
  if (sinks > 0) exact += "-s" + std::to_string(sinks);
  if (window > 0) exact += "-r" + std::to_string(window);
  switch (kind) {
    case CacheVariantKind::Identity:
      return "identity";
    case CacheVariantKind::Rvq:
      return (name.empty() ? "rvq-" + std::to_string(depth) : name) + exact;
    case CacheVariantKind::Kivi:
      return "kivi-" + std::to_string(bits) + exact;
  }
  return "?";
}

int CacheVariantSpec::depthOf(int layer, Kind which) const {
  if (layerDepths.empty()) return depth;
  if (layer < 0 || layer >= static_cast<int>(layerDepths.size())) return 0;
  return layerDepths[static_cast<size_t>(layer)][which == Kind::Keys ? 0 : 1];
}

CacheVariantSpec rvqVariant(int depth, int sinks, int window) {
  CacheVariantSpec s;
  s.kind = CacheVariantKind::Rvq;
  s.depth = depth;
  s.sinks = sinks;
  s.window = window;
  return s;
}

int64_t rvqExactTokens(int sinks, int window, int64_t tokens) {
  return std::min<int64_t>(tokens, int64_t{std::max(sinks, 0)} + std::max(window, 0));
}

double rvqQuantizerBits(const CodebookFile& codebooks, int depth, int sinks, int window,
                        const CacheCostBasis& basis) {
  if (depth <= 0) return 16.0;
  const RvqConfig& c = codebooks.config;
  const double exact = basis.tokens > 0 ? static_cast<double>(rvqExactTokens(sinks, window, basis.tokens)) /
                                              static_cast<double>(basis.tokens)
                                        : 0.0;
  double bits =
      (1.0 - exact) * rvqBitsPerChannel(c.codebookSize, depth, c.groupSize, codebooks.headDim) + 16.0 * exact;
  if (basis.amortiseTokens > 0) {
    const double copies = c.perHead ? codebooks.numKvHeads : 1;
    double floats = copies * depth * static_cast<double>(c.codebookSize) * c.groupSize;
    if (c.centerChannels) floats += static_cast<double>(codebooks.numKvHeads) * codebooks.headDim;  // means
    bits += 32.0 * floats /
            (static_cast<double>(basis.amortiseTokens) * codebooks.numKvHeads * codebooks.headDim);
  }
  return bits;
}

namespace {

double kiviBitsPerChannel(const CacheVariantSpec& spec, int64_t tokens) {
  const double keyBits = scalarBitsPerChannel(spec.bits, spec.tokenGroup);
  const double valueBits = scalarBitsPerChannel(spec.bits, spec.channelGroup);
  if ((spec.window <= 0 && spec.sinks <= 0) || tokens <= 0) return 0.5 * (keyBits + valueBits);
  const auto t = static_cast<double>(tokens);
  const int64_t sinks = std::max(spec.sinks, 0);
  // keys: the tokens past the last whole group of R; values: the last R
  const int64_t keyFullTokens = spec.window > 0 ? tokens % spec.window : 0;
  const int64_t valueFullTokens = std::min<int64_t>(spec.window, tokens);
  const auto keyFull = static_cast<double>(std::min(tokens, keyFullTokens + sinks));
  const auto valueFull = static_cast<double>(std::min(tokens, valueFullTokens + sinks));
  const double keys = ((t - keyFull) * keyBits + keyFull * 16.0) / t;
  const double values = ((t - valueFull) * valueBits + valueFull * 16.0) / t;
  return 0.5 * (keys + values);
}

}  // namespace

double cacheBitsPerChannel(const CacheVariantSpec& spec, const CodebookFile* codebooks,
                           const std::vector<int>& layers, const CacheCostBasis& basis) {
  switch (spec.kind) {
    case CacheVariantKind::Identity:
      return 16.0;
    case CacheVariantKind::Kivi:
      return kiviBitsPerChannel(spec, basis.tokens);
    case CacheVariantKind::Rvq:
      break;
  }
  double sum = 0;
  for (int layer : layers) {
    for (Kind kind : {Kind::Keys, Kind::Values})
      sum += rvqQuantizerBits(*codebooks, spec.depthOf(layer, kind), spec.sinks, spec.window, basis);
  }
  return layers.empty() ? 0.0 : sum / (2.0 * static_cast<double>(layers.size()));
}

void validateCacheVariant(const CacheVariantSpec& spec, const CodebookFile* codebooks, int headDim) {
  if (spec.sinks < 0) throwBadInput("", "sinks", "must be >= 0");
  if (spec.window < 0) {
    throwBadInput("", spec.kind == CacheVariantKind::Kivi ? "kivi_window" : "rvq_window", "must be >= 0");
  }
  if (spec.kind == CacheVariantKind::Rvq) {
    if (codebooks == nullptr) throwBadInput("", "depths", "RVQ variants need codebooks");
    const int k = codebooks->config.depth;
    auto check = [&](int depth, int low) {
      if (depth < low || depth > k) {
        throwBadInput("", "depths",
                      "depth " + std::to_string(depth) + " outside " + std::to_string(low) + ".." +
                          std::to_string(k) + " (the stages of the codebook file)");
      }
    };
    if (spec.layerDepths.empty()) check(spec.depth, 1);
    for (const auto& pair : spec.layerDepths) {
      check(pair[0], 0);
      check(pair[1], 0);
    }
    return;
  }
  if (spec.kind != CacheVariantKind::Kivi) return;
  if (spec.bits < 1 || spec.bits > 8) throwBadInput("", "kivi", "bits must be in 1..8");
  validateScalarBaseline({spec.bits, spec.tokenGroup, spec.channelGroup}, headDim);
  if (spec.window > 0 && spec.window % spec.tokenGroup != 0) {
    throwBadInput("", "kivi_window",
                  "KIVI's recent window must be a multiple of the token group " +
                      std::to_string(spec.tokenGroup) + " (KIVI quantizes keys a whole group at a time)");
  }
}

namespace {

// Per-head codebooks and channel means are indexed by the model's kv head: refuse a set made for
// another head count.
void checkHeadsFit(const QuantizerSet& s, int kvHeads, int headDim, const std::string& codebookPath) {
  const std::string where = "/layers/" + std::to_string(s.layer) + "/" + kindName(s.kind);
  if (s.codebooks.size() > 1 && s.codebooks.size() != static_cast<size_t>(kvHeads)) {
    throwBadInput(codebookPath, where,
                  std::to_string(s.codebooks.size()) + " per-head quantizers, the model has " +
                      std::to_string(kvHeads) + " kv heads");
  }
  if (!s.channelMeans.empty() && s.channelMeans.size() != static_cast<size_t>(kvHeads) * headDim) {
    throwBadInput(codebookPath, where + "/channel_means",
                  "channel means for " + std::to_string(s.channelMeans.size() / std::max(headDim, 1)) +
                      " kv heads, the model has " + std::to_string(kvHeads));
  }
}

}  // namespace

CacheQuantizer::CacheQuantizer(const CacheVariantSpec& spec, const std::set<int>& layers, int kvHeads,
                               int headDim, const CodebookFile* codebooks, const std::string& codebookPath,
                               Backend* backend)
    : m_spec(spec),
      m_layers(layers),
      m_kvHeads(kvHeads),
      m_headDim(headDim),
      m_codebooks(codebooks),
      m_backend(backend) {
  if (spec.kind != CacheVariantKind::Rvq) return;
  for (int layer : layers) {
    for (Kind kind : {Kind::Keys, Kind::Values}) {
      const bool found =
          std::any_of(codebooks->sets.begin(), codebooks->sets.end(),
                      [&](const QuantizerSet& s) { return s.layer == layer && s.kind == kind; });
      if (!found) {
        throwBadInput(codebookPath, "/layers/" + std::to_string(layer) + "/" + kindName(kind),
                      "no quantizer for this layer (choose --layers among the codebook file's layers)");
      }
    }
  }
  for (const QuantizerSet& s : codebooks->sets) {  // the first depthOf(layer, kind) stages
    checkHeadsFit(s, kvHeads, headDim, codebookPath);
    m_truncatedBegin.push_back(m_truncated.size());
    const int depth = std::max(1, spec.depthOf(s.layer, s.kind));
    for (const Codebooks& full : s.codebooks) {
      Codebooks cut(depth, full.size, full.dim);
      std::memcpy(cut.data.data(), full.data.data(), cut.data.size() * sizeof(float));
      m_truncated.push_back(std::move(cut));
    }
  }
}

int CacheQuantizer::recentWindow(int layer) const {
  return m_spec.kind != CacheVariantKind::Identity && m_layers.count(layer) != 0 ? m_spec.window : 0;
}

bool CacheQuantizer::slidingKeyWindow(int /*layer*/) const {
  return m_spec.kind == CacheVariantKind::Rvq;
}

const QuantizerSet& CacheQuantizer::set(int layer, Kind kind) const {
  for (const QuantizerSet& s : m_codebooks->sets) {
    if (s.layer == layer && s.kind == kind) return s;
  }
  throwInternal("CacheQuantizer", "no quantizer for layer " + std::to_string(layer));
}

void CacheQuantizer::rvqVectors(const QuantizerSet& s, const Codebooks& books, float* x, int64_t n,
                                const float* means, int meanRows) {
  const int d = static_cast<int>(s.channelOrder.size());
  const int g = books.dim;
  const int64_t groups = n * (d / g);
  std::vector<float> grouped(static_cast<size_t>(groups * g)), scales(static_cast<size_t>(n));
  std::vector<int32_t> codes(static_cast<size_t>(groups * books.depth));
  scaleAndGroup(x, n, d, s.channelOrder, g, grouped.data(), scales.data(), weightsOrNull(s.channelWeights),
                means, meanRows);
  encodeRvq(grouped.data(), groups, books, m_codebooks->config, *m_backend, codes.data(), nullptr);
  decodeRvq(codes.data(), groups, books, books.depth, grouped.data());
  ungroupAndUnscale(grouped.data(), scales.data(), n, d, s.channelOrder, g, x,
                    weightsOrNull(s.channelWeights), means, meanRows);
}

void CacheQuantizer::applyRvq(const QuantizerSet& s, int64_t tokens, float* x) {
  const size_t index = static_cast<size_t>(&s - m_codebooks->sets.data());
  const Codebooks* books = &m_truncated[m_truncatedBegin[index]];
  const int d = m_headDim;
  const int heads = m_kvHeads;
  if (s.codebooks.size() == 1) {  // one quantizer shared by every head
    rvqVectors(s, books[0], x, tokens * heads, meansOrNull(s.channelMeans), heads);
    return;
  }
  std::vector<float> head(static_cast<size_t>(tokens * d));  // per-head quantizers
  for (int h = 0; h < heads; ++h) {
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(head.data() + t * d, x + (t * heads + h) * d, static_cast<size_t>(d) * sizeof(float));
    }
    rvqVectors(s, books[h], head.data(), tokens, headMeansOrNull(s.channelMeans, h, d), 1);
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(x + (t * heads + h) * d, head.data() + t * d, static_cast<size_t>(d) * sizeof(float));
    }
  }
}

void CacheQuantizer::applyKivi(int64_t tokens, float* keys, float* values) const {
  // KIVI on the whole sequence: key groups of n_t tokens start at token 0, so with a window
  // (a multiple of n_t) the groups attention reads quantized are exactly KIVI's.
  const ScalarBaselineConfig config{m_spec.bits, m_spec.tokenGroup, m_spec.channelGroup};
  for (auto [kind, data] : {std::pair{Kind::Keys, keys}, std::pair{Kind::Values, values}}) {
    Slab in;
    in.tokens = tokens;
    in.heads = m_kvHeads;
    in.dim = m_headDim;
    in.data.assign(data, data + tokens * in.heads * in.dim);
    Slab out;
    kiviQuantize(in, kind, config, out);
    std::memcpy(data, out.data.data(), out.data.size() * sizeof(float));
  }
}

void CacheQuantizer::apply(int layer, int64_t tokens, float* keys, float* values) {
  if (m_layers.count(layer) == 0 || m_spec.kind == CacheVariantKind::Identity) return;
  // The sinks are quantized with the rest (KIVI's groups keep their shape) and put back exact.
  const size_t sinkFloats =
      static_cast<size_t>(std::min<int64_t>(m_spec.sinks, tokens)) * m_kvHeads * m_headDim;
  const std::vector<float> sinkKeys(keys, keys + sinkFloats), sinkValues(values, values + sinkFloats);
  if (m_spec.kind == CacheVariantKind::Kivi) {
    applyKivi(tokens, keys, values);
  } else {
    if (m_spec.depthOf(layer, Kind::Keys) > 0) applyRvq(set(layer, Kind::Keys), tokens, keys);
    if (m_spec.depthOf(layer, Kind::Values) > 0) applyRvq(set(layer, Kind::Values), tokens, values);
  }
  std::copy(sinkKeys.begin(), sinkKeys.end(), keys);
  std::copy(sinkValues.begin(), sinkValues.end(), values);
}

}  // namespace kvq
