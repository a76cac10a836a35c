#include "kvq/study/attention_study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "kvq/attention/dump_rope.h"
#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/study/quantize_study.h"
#include "kvq/study/scalar_baseline.h"
#include "study/sub_task.h"

namespace kvq {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t mixSeed(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// [begin, end) of every sequence (the whole dump when /sequence_starts is absent).
std::vector<TokenRange> sequenceRanges(const DumpInfo& info) {
  std::vector<TokenRange> ranges;
  const std::vector<int64_t>& s = info.sequenceStarts;
  if (s.empty()) return {{0, info.tokens}};
  for (size_t i = 0; i < s.size(); ++i) ranges.push_back({s[i], i + 1 < s.size() ? s[i + 1] : info.tokens});
  return ranges;
}

int64_t sequenceStartOf(const std::vector<TokenRange>& sequences, int64_t token) {
  const auto it = std::upper_bound(sequences.begin(), sequences.end(), token,
                                   [](int64_t t, const TokenRange& r) { return t < r.begin; });
  return std::prev(it)->begin;
}

// What the study quantizes in one layer, and how each method is laid out.
struct MethodSpec {
  std::string method;
  int depth = 0;
  int bits = 0;
  bool window = false;
};

struct LayerPlan {
  int layer = 0;
  const QuantizerSet* sets[2] = {nullptr, nullptr};  // keys, values (nullptr: no RVQ for that kind)
  bool quantize[2] = {false, false};                 // kind replaced by reconstructions
  std::vector<MethodSpec> methods;
};

const QuantizerSet* findSet(const std::vector<QuantizerSet>& sets, int layer, Kind kind) {
  for (const QuantizerSet& s : sets) {
    if (s.layer == layer && s.kind == kind) return &s;
  }
  return nullptr;
}

LayerPlan planLayer(const DumpInfo& info, int layer, const std::vector<QuantizerSet>& sets,
                    const StudyOptions& so, const AttentionOptions& ao) {
  LayerPlan plan;
  plan.layer = layer;
  for (Kind kind : so.kinds) {
    const int k = kind == Kind::Keys ? 0 : 1;
    plan.quantize[k] = true;
    if (sets.empty()) continue;
    plan.sets[k] = findSet(sets, layer, kind);
    if (plan.sets[k] == nullptr) {
      throwBadInput("", "layer " + std::to_string(layer),
                    std::string("the codebooks hold no ") + kindName(kind) +
                        " quantizer for this layer (select the kinds they hold, or leave this layer out)");
    }
    const QuantizerSet& set = *plan.sets[k];
    if (static_cast<int>(set.channelOrder.size()) != info.headDim ||
        (set.codebooks.size() != 1 && static_cast<int>(set.codebooks.size()) != info.numKvHeads)) {
      throwBadInput("", "layer " + std::to_string(layer) + " " + kindName(kind),
                    "the quantizer does not fit the dump's head_dim or kv heads");
    }
  }
  if (ao.includeExact) plan.methods.push_back({"exact", 0, 0, false});
  if (!sets.empty()) {
    const int K = so.config.depth;
    std::vector<int> depths = ao.rvqDepths.empty() ? std::vector<int>{K} : ao.rvqDepths;
    for (int d : depths) plan.methods.push_back({"rvq", d, 0, false});
  }
  for (int b : so.baselineBits) {
    plan.methods.push_back({"kivi", 0, b, false});
    if (ao.kiviWindow) plan.methods.push_back({"kivi-window", 0, b, true});
  }
  return plan;
}

// Bits per channel of one kind under one method, honest for the dump's sequences.
double kindBits(const MethodSpec& m, Kind kind, const DumpInfo& info, const StudyOptions& so, int window) {
  if (m.method == "exact") return 16.0;
  if (m.method == "rvq")
    return rvqBitsPerChannel(so.config.codebookSize, m.depth, so.config.groupSize, info.headDim);
  const int n = kind == Kind::Keys ? so.baselineTokenGroup : so.baselineChannelGroup;
  if (!m.window) return scalarBitsPerChannel(m.bits, n);
  double total = 0;  // each sequence's cache at its full length, weighted by its tokens
  for (const TokenRange& r : sequenceRanges(info))
    total += kiviWindowBitsPerChannel(m.bits, n, kind, window, r.size()) * static_cast<double>(r.size());
  return total / static_cast<double>(info.tokens);
}

double methodBits(const MethodSpec& m, const LayerPlan& plan, const DumpInfo& info, const StudyOptions& so,
                  int window) {
  double sum = 0;
  for (int k = 0; k < 2; ++k) {
    sum += plan.quantize[k] ? kindBits(m, k == 0 ? Kind::Keys : Kind::Values, info, so, window) : 16.0;
  }
  return sum / 2;
}

// The layer's data, laid out per kv head: [H][T * D].
struct LayerData {
  std::vector<std::vector<float>> keys, values;  // as stored (pre- or post-RoPE)
  std::vector<float> queries;                    // [n, H_q, D], rotated when pre-RoPE
  std::vector<int64_t> positions, starts;        // [n] query tokens and their sequence starts
};

std::vector<std::vector<float>> readHeads(const DumpReader& reader, int layer, Kind kind) {
  const DumpInfo& info = reader.info();
  const Slab slab = reader.read(layer, kind);
  const int H = info.numKvHeads, D = info.headDim;
  std::vector<std::vector<float>> heads(static_cast<size_t>(H),
                                        std::vector<float>(static_cast<size_t>(info.tokens * D)));
  for (int64_t t = 0; t < info.tokens; ++t) {
    for (int h = 0; h < H; ++h) std::copy_n(slab.vector(t, h), D, heads[h].data() + t * D);
  }
  return heads;
}

// The query rows of `tokens` (ascending), read in runs of at most 1024 rows.
std::vector<float> readQueries(const DumpReader& reader, int layer, const std::vector<int64_t>& tokens) {
  const DumpInfo& info = reader.info();
  const int64_t per = static_cast<int64_t>(info.numQHeads) * info.headDim;
  std::vector<int64_t> rows(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto& qp = info.queryPositions;
    rows[i] = qp.empty() ? tokens[i] : std::lower_bound(qp.begin(), qp.end(), tokens[i]) - qp.begin();
  }
  std::vector<float> out(tokens.size() * static_cast<size_t>(per));
  for (size_t i = 0; i < rows.size();) {
    size_t j = i;
    while (j + 1 < rows.size() && rows[j + 1] < rows[i] + 1024) ++j;
    const Slab slab = reader.read(layer, Kind::Queries, rows[i], rows[j] - rows[i] + 1);
    for (size_t k = i; k <= j; ++k)
      std::copy_n(slab.data.data() + (rows[k] - rows[i]) * per, per,
                  out.data() + k * static_cast<size_t>(per));
    i = j + 1;
  }
  return out;
}

// Rotates [T, D] keys of one head in place (positions within their sequences).
void rotateHead(std::vector<float>& x, const std::vector<TokenRange>& sequences, int D,
                const DumpRope& rope) {
  for (const TokenRange& r : sequences)
    applyRope(x.data() + r.begin * D, r.size(), 1, D, D, 0, rope.invFreq, rope.layout);
}

// Everything needed to reconstruct and rotate one kv head.
struct HeadContext {
  const DumpInfo* info = nullptr;
  const StudyOptions* so = nullptr;
  const LayerPlan* plan = nullptr;
  const std::vector<TokenRange>* sequences = nullptr;
  const DumpRope* rope = nullptr;  // nullptr: keys are post-RoPE
  Backend* backend = nullptr;
  int head = 0;
};

// RVQ reconstructions of one head's [T, D] vectors at each depth.
std::vector<std::vector<float>> rvqHead(const HeadContext& c, const QuantizerSet& set,
                                        const std::vector<float>& x, const std::vector<int>& depths) {
  const int D = c.info->headDim, g = c.so->config.groupSize;
  const int64_t T = c.info->tokens, rows = T * (D / g);
  const Codebooks& books =
      set.codebooks.size() == 1 ? set.codebooks[0] : set.codebooks[static_cast<size_t>(c.head)];
  std::vector<float> groups(static_cast<size_t>(T * D)), scales(static_cast<size_t>(T));
  std::vector<int32_t> codes(static_cast<size_t>(rows * books.depth));
  const float* weights = weightsOrNull(set.channelWeights);
  const float* means = headMeansOrNull(set.channelMeans, c.head, D);
  scaleAndGroup(x.data(), T, D, set.channelOrder, g, groups.data(), scales.data(), weights, means, 1);
  RvqConfig config = c.so->config;
  encodeRvq(groups.data(), rows, books, config, *c.backend, codes.data(), nullptr);
  std::vector<std::vector<float>> out;
  for (int depth : depths) {
    if (depth < 1 || depth > books.depth) {
      throwBadInput("", "attention_depths",
                    "depth " + std::to_string(depth) + " outside 1.." + std::to_string(books.depth));
    }
    decodeRvq(codes.data(), rows, books, depth, groups.data());
    std::vector<float>& y = out.emplace_back(static_cast<size_t>(T * D));
    ungroupAndUnscale(groups.data(), scales.data(), T, D, set.channelOrder, g, y.data(), weights, means, 1);
  }
  return out;
}

std::vector<float> kiviHead(const HeadContext& c, Kind kind, int bits, const std::vector<float>& x) {
  const int D = c.info->headDim;
  const ScalarBaselineConfig config{bits, c.so->baselineTokenGroup, c.so->baselineChannelGroup};
  std::vector<float> out(x.size());
  Slab in, q;
  for (const TokenRange& r : *c.sequences) {  // key groups start at every sequence's first token
    in.tokenBegin = r.begin;
    in.tokens = r.size();
    in.heads = 1;
    in.dim = D;
    in.data.assign(x.begin() + r.begin * D, x.begin() + r.end * D);
    kiviQuantize(in, kind, config, q);
    std::copy(q.data.begin(), q.data.end(), out.begin() + r.begin * D);
  }
  return out;
}

// The reconstructions of one head, per method (keys rotated when pre-RoPE).
struct HeadVariants {
  std::vector<std::vector<float>> store;
  std::vector<AttentionVariant> list;
};

HeadVariants buildVariants(const HeadContext& c, const std::vector<float>& keys,
                           const std::vector<float>& values, const std::vector<float>& keysRotated) {
  HeadVariants hv;
  hv.store.reserve(2 * c.plan->methods.size());
  const float* exact[2] = {keysRotated.data(), values.data()};
  const std::vector<float>* raw[2] = {&keys, &values};
  std::vector<const float*> rvq[2];
  std::vector<int> depths;
  for (const MethodSpec& m : c.plan->methods) {
    if (m.method == "rvq") depths.push_back(m.depth);
  }
  for (int k = 0; k < 2; ++k) {
    if (c.plan->sets[k] == nullptr || depths.empty()) continue;
    for (auto& y : rvqHead(c, *c.plan->sets[k], *raw[k], depths)) {
      if (k == 0 && c.rope != nullptr) rotateHead(y, *c.sequences, c.info->headDim, *c.rope);
      rvq[k].push_back(hv.store.emplace_back(std::move(y)).data());
    }
  }
  size_t rvqIndex = 0;
  const std::vector<MethodSpec>& methods = c.plan->methods;
  for (size_t i = 0; i < methods.size(); ++i) {
    const MethodSpec& m = methods[i];
    AttentionVariant v{exact[0], exact[1], m.window};
    if (m.method == "exact") {
      // the exact arrays themselves
    } else if (m.method == "rvq") {
      for (int k = 0; k < 2; ++k) {
        if (!rvq[k].empty()) (k == 0 ? v.keys : v.values) = rvq[k][rvqIndex];
      }
      ++rvqIndex;
    } else if (m.window && i > 0 && methods[i - 1].method == "kivi" && methods[i - 1].bits == m.bits) {
      v.keys = hv.list.back().keys;  // the same KIVI reconstruction, read with its window
      v.values = hv.list.back().values;
    } else {
      for (int k = 0; k < 2; ++k) {
        if (!c.plan->quantize[k]) continue;
        std::vector<float> y = kiviHead(c, k == 0 ? Kind::Keys : Kind::Values, m.bits, *raw[k]);
        if (k == 0 && c.rope != nullptr) rotateHead(y, *c.sequences, c.info->headDim, *c.rope);
        (k == 0 ? v.keys : v.values) = hv.store.emplace_back(std::move(y)).data();
      }
    }
    hv.list.push_back(v);
  }
  return hv;
}

std::string ropeText(const DumpInfo& info, const DumpRope* rope) {
  if (rope == nullptr) return "none (keys and queries post-RoPE)";
  char buffer[160];
  if (!info.ropeInvFreq.empty()) {
    std::snprintf(buffer, sizeof buffer, "%s, /rope_inv_freq, dim %d", ropeLayoutName(rope->layout),
                  rope->ropeDim());
  } else {
    std::snprintf(buffer, sizeof buffer, "%s, theta %g, dim %d", ropeLayoutName(rope->layout),
                  *info.ropeTheta, rope->ropeDim());
  }
  return buffer;
}

LayerAttentionResult measureLayer(const DumpReader& reader, const LayerPlan& plan, const TokenSplit& split,
                                  const StudyOptions& so, const AttentionOptions& ao,
                                  const AttentionSettings& settings, const DumpRope* rope, Backend& backend,
                                  const TaskControl* control) {
  const auto start = Clock::now();
  const DumpInfo& info = reader.info();
  const int Hkv = info.numKvHeads, G = info.numQHeads / info.numKvHeads, D = info.headDim;
  const std::vector<TokenRange> sequences = sequenceRanges(info);
  LayerAttentionResult result;
  result.layer = plan.layer;
  LayerData data;
  data.positions = sampleQueryTokens(info, split, ao.queriesPerLayer,
                                     mixSeed(so.config.seed ^ (static_cast<uint64_t>(plan.layer) << 32)),
                                     &result.candidates);
  result.queryTokens = static_cast<int64_t>(data.positions.size());
  for (int64_t t : data.positions) data.starts.push_back(sequenceStartOf(sequences, t));
  checkCancel(control);
  data.queries = readQueries(reader, plan.layer, data.positions);
  if (rope != nullptr) {  // each query at its own position within its sequence
    const int64_t row = static_cast<int64_t>(info.numQHeads) * D;
    for (size_t i = 0; i < data.positions.size(); ++i) {
      applyRope(data.queries.data() + static_cast<int64_t>(i) * row, 1, info.numQHeads, D, row,
                data.positions[i] - data.starts[i], rope->invFreq, rope->layout);
    }
  }
  data.keys = readHeads(reader, plan.layer, Kind::Keys);
  data.values = readHeads(reader, plan.layer, Kind::Values);

  std::vector<std::vector<AttentionSums>> perHead(plan.methods.size());  // [method][H_q]
  std::vector<float> groupQueries(data.positions.size() * static_cast<size_t>(G * D));
  for (int h = 0; h < Hkv; ++h) {
    const TaskControl ctl = subControl(control, static_cast<double>(h) / Hkv, 1.0 / Hkv, "");
    HeadContext c{&info, &so, &plan, &sequences, rope, &backend, h};
    std::vector<float> keysRotated = data.keys[h];
    if (rope != nullptr) rotateHead(keysRotated, sequences, D, *rope);
    const HeadVariants hv = buildVariants(c, data.keys[h], data.values[h], keysRotated);
    for (size_t i = 0; i < data.positions.size(); ++i) {
      std::copy_n(data.queries.data() + (i * info.numQHeads + h * G) * D, G * D,
                  groupQueries.data() + i * G * D);
    }
    const AttentionQueries q{groupQueries.data(), G, data.positions.data(), data.starts.data(),
                             static_cast<int64_t>(data.positions.size())};
    std::vector<std::vector<AttentionSums>> sums;
    accumulateAttention(settings, info.tokens, D, keysRotated.data(), data.values[h].data(), hv.list, q, sums,
                        &ctl);
    for (size_t m = 0; m < plan.methods.size(); ++m)
      perHead[m].insert(perHead[m].end(), sums[m].begin(), sums[m].end());
  }
  for (size_t m = 0; m < plan.methods.size(); ++m) {
    const MethodSpec& spec = plan.methods[m];
    AttentionMethodResult r{spec.method, spec.depth,
                            spec.bits,   methodBits(spec, plan, info, so, ao.recentWindow),
                            {},          perHead[m]};
    for (const AttentionSums& s : perHead[m]) r.total.merge(s);
    result.methods.push_back(std::move(r));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace

void validateAttentionOptions(const AttentionOptions& o) {
  if (o.queriesPerLayer < 0) throwBadInput("", "attention_queries", "must be 0 (all) or positive");
  if (o.topK < 1 || o.topK > 256) throwBadInput("", "attention_top_k", "must be in 1..256");
  if (o.recentWindow < 1) throwBadInput("", "attention_window", "must be at least 1");
  for (int d : o.rvqDepths) {
    if (d < 1) throwBadInput("", "attention_depths", "depths start at 1");
  }
}

std::vector<int64_t> sampleQueryTokens(const DumpInfo& info, const TokenSplit& split, int64_t want,
                                       uint64_t seed, int64_t* candidates) {
  std::vector<int64_t> cand;
  for (const TokenRange& r : split.heldOut) {
    if (info.queryPositions.empty()) {
      for (int64_t t = r.begin; t < r.end; ++t) cand.push_back(t);
    } else {
      const auto& qp = info.queryPositions;
      for (auto it = std::lower_bound(qp.begin(), qp.end(), r.begin); it != qp.end() && *it < r.end; ++it)
        cand.push_back(*it);
    }
  }
  if (candidates != nullptr) *candidates = static_cast<int64_t>(cand.size());
  const auto M = static_cast<int64_t>(cand.size());
  if (want <= 0 || want >= M) return cand;
  std::mt19937_64 rng(seed);
  std::vector<int64_t> picked;
  for (int64_t i = 0; i < want; ++i) {  // stratum i: candidates [i M / want, (i + 1) M / want)
    const int64_t lo = i * M / want, hi = (i + 1) * M / want;
    std::uniform_int_distribution<int64_t> pick(lo, hi - 1);
    picked.push_back(cand[static_cast<size_t>(pick(rng))]);
  }
  return picked;
}

AttentionMethodResult AttentionResult::total(const std::string& method, int depthOrBits) const {
  AttentionMethodResult out;
  out.method = method;
  double bitsSum = 0;
  int count = 0;
  for (const LayerAttentionResult& layer : layers) {
    for (const AttentionMethodResult& m : layer.methods) {
      if (m.method != method || (method == "rvq" ? m.depth : m.bits) != depthOrBits) continue;
      out.depth = m.depth;
      out.bits = m.bits;
      bitsSum += m.bitsPerChannel;
      ++count;
      out.total.merge(m.total);
      if (out.perHead.size() < m.perHead.size()) out.perHead.resize(m.perHead.size());
      for (size_t h = 0; h < m.perHead.size(); ++h) out.perHead[h].merge(m.perHead[h]);
    }
  }
  out.bitsPerChannel = count > 0 ? bitsSum / count : 0.0;  // layers share T, so a plain mean
  return out;
}

void checkAttentionInputs(const DumpReader& reader, const std::vector<int>& layers) {
  const DumpInfo& info = reader.info();
  const bool any =
      std::any_of(layers.begin(), layers.end(), [&](int l) { return reader.has(l, Kind::Queries); });
  if (!any) {
    throwBadInput(info.path, "attention",
                  "no selected layer stores queries (dump them with the dumper's --queries)");
  }
  if (info.numQHeads % info.numKvHeads != 0) {
    throwBadInput(info.path, "/",
                  "num_q_heads " + std::to_string(info.numQHeads) + " is not a multiple of num_kv_heads " +
                      std::to_string(info.numKvHeads) + " (GQA needs whole groups)");
  }
  if (info.keyRope == "pre") (void)ropeFromDump(info);  // throws when the rotation is unknown
}

AttentionResult measureAttention(const DumpReader& reader, const std::vector<int>& layers,
                                 const std::vector<QuantizerSet>& sets, const StudyOptions& so,
                                 const AttentionOptions& ao, Backend& backend, const TaskControl* control) {
  validateAttentionOptions(ao);
  if (ao.kiviWindow && !so.baselineBits.empty() && ao.recentWindow % so.baselineTokenGroup != 0) {
    throwBadInput("", "attention_window",
                  "KIVI's window must be a multiple of the key token group " +
                      std::to_string(so.baselineTokenGroup) +
                      " (keys are quantized a group at a time); or leave KIVI's window out");
  }
  checkAttentionInputs(reader, layers);
  const DumpInfo& info = reader.info();
  for (int bits : so.baselineBits)
    validateScalarBaseline({bits, so.baselineTokenGroup, so.baselineChannelGroup}, info.headDim);
  std::vector<int> measured;
  for (int layer : layers) {
    if (reader.has(layer, Kind::Queries)) measured.push_back(layer);
  }
  AttentionResult result;
  result.options = ao;
  result.quantizedKinds = so.kinds;
  AttentionSettings settings;
  settings.scale = info.attentionScale.value_or(1.0 / std::sqrt(static_cast<double>(info.headDim)));
  settings.topK = ao.topK;
  settings.recentWindow = ao.recentWindow;
  result.scale = settings.scale;
  const DumpRope rope = info.keyRope == "pre" ? ropeFromDump(info) : DumpRope{};
  const DumpRope* ropePtr = info.keyRope == "pre" ? &rope : nullptr;
  result.rope = ropeText(info, ropePtr);
  const TokenSplit split = splitTokens(info.tokens, info.sequenceStarts, so.config.heldOutFraction);
  for (size_t i = 0; i < measured.size(); ++i) {
    const double n = static_cast<double>(measured.size());
    std::string label = "L";  // appended: "L" + std::string&& trips GCC 12's false -Wrestrict
    label += std::to_string(measured[i]);
    label += " attention";
    const TaskControl ctl = subControl(control, static_cast<double>(i) / n, 1.0 / n, label);
    const LayerPlan plan = planLayer(info, measured[i], sets, so, ao);
    result.layers.push_back(measureLayer(reader, plan, split, so, ao, settings, ropePtr, backend, &ctl));
  }
  reportProgress(control, 1.0, "done");
  return result;
}

}  // namespace kvq
