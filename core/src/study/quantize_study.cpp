#include "kvq/study/quantize_study.h"
#include "kvq/rvq/encoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/rvq/refine.h"
#include "kvq/study/channel_weights.h"
#include "study/sub_task.h"

namespace kvq {
namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t mixSeed(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Seed of one quantizer: distinct per layer, kind and head, reproducible from config.seed.
uint64_t quantizerSeed(uint64_t seed, int layer, Kind kind, int head) {
  return mixSeed(seed ^ mixSeed((static_cast<uint64_t>(layer) << 20) ^ (static_cast<uint64_t>(kind) << 16) ^
                                static_cast<uint64_t>(head + 1)));
}

std::string jobLabel(int layer, Kind kind) {
  std::string label = "L";  // appended, not "L" + std::string&&: GCC 12 warns falsely (-Wrestrict)
  label += std::to_string(layer);
  label += ' ';
  label += kindName(kind);
  return label;
}

std::vector<int> resolveLayers(const DumpInfo& info, const std::vector<int>& wanted) {
  if (wanted.empty()) return info.layers;
  for (int layer : wanted) {
    if (std::find(info.layers.begin(), info.layers.end(), layer) == info.layers.end()) {
      throwBadInput(info.path, "layers", "layer " + std::to_string(layer) + " is not in the dump");
    }
  }
  return wanted;
}

void validateOptions(const DumpInfo& info, const StudyOptions& options) {
  validateConfig(options.config, info.headDim);
  if (options.kinds.empty()) throwBadInput("", "kinds", "no kind selected");
  for (Kind kind : options.kinds) {
    if (kind == Kind::Queries) throwBadInput("", "kinds", "queries are not quantized (keys, values)");
  }
  for (int bits : options.baselineBits) {
    ScalarBaselineConfig b{bits, options.baselineTokenGroup, options.baselineChannelGroup};
    validateScalarBaseline(b, info.headDim);
  }
  if (options.chunkTokens < 1) throwBadInput("", "chunk_tokens", "must be at least 1");
  if (options.attention.enabled) validateAttentionOptions(options.attention);
}

// Attention metrics of the study's layers under its quantizers, when asked for;
// the jobs' progress took [0, jobsSpan) of the control.
void addAttention(const DumpReader& reader, const StudyOptions& options, Backend& backend, double jobsSpan,
                  const TaskControl* control, StudyResult& result) {
  if (!options.attention.enabled) return;
  std::vector<int> layers;
  for (const LayerKindResult& job : result.jobs) {
    if (std::find(layers.begin(), layers.end(), job.layer) == layers.end()) layers.push_back(job.layer);
  }
  const TaskControl ctl = subControl(control, jobsSpan, 1.0 - jobsSpan, "");
  result.attention =
      measureAttention(reader, layers, quantizerSets(result), options, options.attention, backend, &ctl);
}

// Evaluation chunks: each held-out range in blocks of a multiple of n_t tokens,
// so the keys baseline's token groups start at every range's first token.
// Clamped to the dump's T first: --chunk-tokens INT64_MAX must not overflow the rounding.
int64_t evalChunkTokens(const StudyOptions& options, int64_t dumpTokens) {
  const int64_t nt = std::max(1, options.baselineTokenGroup);
  const int64_t chunk = std::clamp<int64_t>(options.chunkTokens, 1, std::max<int64_t>(dumpTokens, 1));
  return chunk / nt * nt + (chunk % nt != 0 ? nt : 0);
}

// The training tokens of one dump (a DumpReader and its split).
struct TrainingSource {
  const DumpReader* reader;
  TokenSplit split;
};

// The first dump's training tokens, then those of options.alsoTrainOn (the same held-out fraction).
std::vector<TrainingSource> trainingSources(const DumpReader& reader, const TokenSplit& split,
                                            const StudyOptions& options) {
  std::vector<TrainingSource> sources{{&reader, split}};
  for (const DumpReader* other : options.alsoTrainOn) {
    const DumpInfo& info = other->info();
    try {
      sources.push_back(
          {other, splitTokens(info.tokens, info.sequenceStarts, options.config.heldOutFraction)});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::BadInput) throw;
      throwBadInput(info.path, e.where(), e.problem());
    }
  }
  return sources;
}

// sums [H, D] += every token's vector of each head, in token order.
void addHeadSums(const Slab& slab, std::vector<double>& sums) {
  for (int64_t t = 0; t < slab.tokens; ++t) {
    for (int h = 0; h < slab.heads; ++h) {
      const float* v = slab.vector(t, h);
      double* sum = sums.data() + static_cast<size_t>(h) * static_cast<size_t>(slab.dim);
      for (int c = 0; c < slab.dim; ++c) sum[c] += v[c];
    }
  }
}

// means = sums / tokens ([H, D] in float); each sampled vector of out[q] (its head in heads[q])
// has its head's means subtracted.
void centreSample(const std::vector<double>& sums, int64_t tokens, int dim,
                  const std::vector<std::vector<int>>& heads, std::vector<std::vector<float>>& out,
                  std::vector<float>& means) {
  means.resize(sums.size());
  for (size_t i = 0; i < sums.size(); ++i) {
    means[i] = static_cast<float>(sums[i] / static_cast<double>(std::max<int64_t>(tokens, 1)));
  }
  for (size_t q = 0; q < out.size(); ++q) {
    for (size_t i = 0; i < heads[q].size(); ++i) {
      const float* mu = means.data() + static_cast<size_t>(heads[q][i]) * dim;
      float* v = out[q].data() + i * static_cast<size_t>(dim);
      for (int c = 0; c < dim; ++c) v[c] -= mu[c];
    }
  }
}

// Training vectors of one layer x kind: for each quantizer q (shared: q = 0 over
// all heads; per head: q = head) a uniform random subset of the training
// token-head vectors of all sources (taken in order, as if one dump held them), at
// most `want` of them, in token order (Knuth's selection sampling: one pass, no
// index list). Result: [Q][m_q * D]. With means != nullptr, also each head's channel means over
// every training token of all sources ([H, D], *means), and the sample is centred by them.
std::vector<std::vector<float>> sampleTrainingVectors(const std::vector<TrainingSource>& sources, int layer,
                                                      Kind kind, bool perHead, int64_t want, uint64_t seed,
                                                      int64_t chunkTokens, const TaskControl* control,
                                                      std::vector<float>* means) {
  const DumpInfo& info = sources.front().reader->info();
  const int heads = info.numKvHeads, dim = info.headDim;
  const int quantizers = perHead ? heads : 1;
  int64_t trainTokens = 0;
  for (const TrainingSource& source : sources) trainTokens += source.split.trainTokens;
  const int64_t itemsPerQuantizer = trainTokens * (perHead ? 1 : heads);
  std::vector<std::vector<float>> out(static_cast<size_t>(quantizers));
  std::vector<int64_t> remaining(static_cast<size_t>(quantizers), itemsPerQuantizer);
  std::vector<int64_t> needed(static_cast<size_t>(quantizers), std::min(want, itemsPerQuantizer));
  std::vector<std::mt19937_64> rngs;
  rngs.reserve(static_cast<size_t>(quantizers));
  for (int q = 0; q < quantizers; ++q) rngs.emplace_back(quantizerSeed(seed, layer, kind, perHead ? q : -1));
  for (int q = 0; q < quantizers; ++q) out[q].reserve(static_cast<size_t>(needed[q]) * dim);
  std::vector<double> sums(means != nullptr ? static_cast<size_t>(heads) * dim : 0, 0.0);
  std::vector<std::vector<int>> sampledHeads(static_cast<size_t>(quantizers));  // only with means

  int64_t done = 0;
  for (const TrainingSource& source : sources) {
    for (const TokenRange& range : source.split.train) {
      for (int64_t t0 = range.begin; t0 < range.end; t0 += chunkTokens) {
        checkCancel(control);
        const Slab slab = source.reader->read(layer, kind, t0, std::min(chunkTokens, range.end - t0));
        for (int64_t t = 0; t < slab.tokens; ++t) {
          for (int h = 0; h < heads; ++h) {
            const int q = perHead ? h : 0;
            if (needed[q] > 0) {
              // Select with probability needed/remaining: exactly `needed` of all items, uniformly.
              std::uniform_int_distribution<int64_t> pick(0, remaining[q] - 1);
              if (pick(rngs[q]) < needed[q]) {
                const float* v = slab.vector(t, h);
                out[q].insert(out[q].end(), v, v + dim);
                if (means != nullptr) sampledHeads[q].push_back(h);
                --needed[q];
              }
            }
            --remaining[q];
          }
        }
        if (means != nullptr) addHeadSums(slab, sums);
        done += slab.tokens;
        reportProgress(control, static_cast<double>(done) / std::max<int64_t>(trainTokens, 1), "reading");
      }
    }
  }
  if (means != nullptr) centreSample(sums, trainTokens, dim, sampledHeads, out, *means);
  return out;
}

QuantizerResult trainQuantizer(const std::vector<float>& vectors, int headDim, const std::vector<int>& order,
                               const std::vector<float>& weights, const RvqConfig& config, int head,
                               Backend& backend, const TaskControl* control) {
  const int g = config.groupSize;
  const int64_t n = static_cast<int64_t>(vectors.size()) / headDim;
  if (n == 0) throwBadInput("", "held_out_fraction", "no training vectors are left");
  std::vector<float> groups(static_cast<size_t>(n) * headDim);
  std::vector<float> scales(static_cast<size_t>(n));
  scaleAndGroup(vectors.data(), n, headDim, order, g, groups.data(), scales.data(), weightsOrNull(weights));
  QuantizerResult result;
  result.head = head;
  result.trainVectors = n * (headDim / g);
  result.codebooks = trainRvq(groups.data(), result.trainVectors, g, config, backend, control, &result.train);
  if (config.refineRounds > 0) {
    refineRvq(groups.data(), result.trainVectors, result.codebooks, config.refineRounds, config.beamWidth,
              backend, control);
  }
  return result;
}

// State of one layer x kind evaluation while the held-out chunks stream through.
struct JobEvaluator {
  const StudyOptions& options;
  const DumpInfo& info;
  Kind kind;
  const std::vector<int>& order;
  const float* weights;             // [D] or nullptr
  const std::vector<float>& means;  // [H, D] or empty
  std::vector<QuantizerResult>& quantizers;
  Backend& backend;
  DepthErrorAccumulator depth;
  std::vector<UsageAccumulator> usage;
  std::vector<ErrorAccumulator> baselines;

  JobEvaluator(const StudyOptions& opts, const DumpInfo& dumpInfo, Kind k, const LayerKindResult& job,
               std::vector<QuantizerResult>& q, Backend& b)
      : options(opts),
        info(dumpInfo),
        kind(k),
        order(job.channelOrder),
        weights(weightsOrNull(job.channelWeights)),
        means(job.channelMeans),
        quantizers(q),
        backend(b),
        depth(dumpInfo.numKvHeads, opts.config.depth),
        baselines(opts.baselineBits.size()) {
    for (size_t i = 0; i < quantizers.size(); ++i)
      usage.emplace_back(opts.config.depth, opts.config.codebookSize);
  }

  // x: [n, D] vectors of head(s) `heads` [n] through quantizer q; means/meanRows as scaleAndGroup's.
  void evalRvq(const float* x, const int* heads, int64_t n, size_t q, const float* mu, int meanRows) {
    const int D = info.headDim, g = options.config.groupSize, K = options.config.depth;
    const int64_t rows = n * (D / g);
    std::vector<float> groups(static_cast<size_t>(rows) * g);
    std::vector<float> scales(static_cast<size_t>(n));
    std::vector<int32_t> codes(static_cast<size_t>(rows) * K);
    scaleAndGroup(x, n, D, order, g, groups.data(), scales.data(), weights, mu, meanRows);
    encodeRvq(groups.data(), rows, quantizers[q].codebooks, options.config, backend, codes.data(), nullptr);
    depth.add(x, heads, n, D, codes.data(), quantizers[q].codebooks, order, scales.data(), weights, mu,
              meanRows);
    usage[q].add(codes.data(), rows);
  }

  void addChunk(const Slab& slab) {
    const int H = slab.heads, D = slab.dim;
    const int64_t n = slab.tokens * H;
    if (quantizers.size() == 1) {
      std::vector<int> heads(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) heads[i] = static_cast<int>(i % H);
      evalRvq(slab.data.data(), heads.data(), n, 0, meansOrNull(means), H);
    } else {
      std::vector<float> x(static_cast<size_t>(slab.tokens) * D);
      for (int h = 0; h < H; ++h) {
        for (int64_t t = 0; t < slab.tokens; ++t) std::copy_n(slab.vector(t, h), D, x.data() + t * D);
        std::vector<int> heads(static_cast<size_t>(slab.tokens), h);
        evalRvq(x.data(), heads.data(), slab.tokens, static_cast<size_t>(h), headMeansOrNull(means, h, D), 1);
      }
    }
    Slab dequantized;
    for (size_t b = 0; b < options.baselineBits.size(); ++b) {
      const ScalarBaselineConfig config{options.baselineBits[b], options.baselineTokenGroup,
                                        options.baselineChannelGroup};
      kiviQuantize(slab, kind, config, dequantized);
      baselines[b].add(slab.data.data(), dequantized.data.data(), n, D);
    }
  }
};

// Obtain: the job's channel order and quantizers — those of `existing` (eval), or
// trained on a sample of the training tokens (progress [0, trainSpan) of control).
void obtainQuantizers(const DumpReader& reader, const StudyOptions& options, const TokenSplit& split,
                      const QuantizerSet* existing, Backend& backend, double trainSpan,
                      const TaskControl* control, LayerKindResult& job) {
  const DumpInfo& info = reader.info();
  const RvqConfig& config = options.config;
  if (existing != nullptr) {
    job.channelOrder = existing->channelOrder;
    job.channelWeights = existing->channelWeights;
    job.channelMeans = existing->channelMeans;
    for (size_t q = 0; q < existing->codebooks.size(); ++q) {
      QuantizerResult qr;
      qr.head = existing->codebooks.size() == 1 ? -1 : static_cast<int>(q);
      qr.codebooks = existing->codebooks[q];
      job.quantizers.push_back(std::move(qr));
    }
    return;
  }
  const std::string label = jobLabel(job.layer, job.kind);
  job.channelOrder = channelOrder(info.headDim, config.groupSize, job.grouping);
  const std::vector<TrainingSource> sources = trainingSources(reader, split, options);
  if (config.queryAware && job.kind == Kind::Keys) {
    std::vector<const DumpReader*> readers{&reader};
    readers.insert(readers.end(), options.alsoTrainOn.begin(), options.alsoTrainOn.end());
    job.channelWeights = queryKeyWeights(readers, job.layer, control);
  }
  const int groups = info.headDim / config.groupSize;
  const int64_t ts = config.trainSample;  // ceil(ts / groups) without overflow near INT64_MAX
  const int64_t want = ts > 0 ? ts / groups + (ts % groups != 0 ? 1 : 0) : INT64_MAX;
  const TaskControl readCtl = subControl(control, 0.0, 0.1, label);
  const auto samples = sampleTrainingVectors(sources, job.layer, job.kind, config.perHead, want, config.seed,
                                             evalChunkTokens(options, info.tokens), &readCtl,
                                             config.centerChannels ? &job.channelMeans : nullptr);
  for (size_t q = 0; q < samples.size(); ++q) {
    const double span = (trainSpan - 0.1) / static_cast<double>(samples.size());
    const TaskControl trainCtl =
        subControl(control, 0.1 + span * static_cast<double>(q), span, label + " train");
    RvqConfig qConfig = config;
    const int head = config.perHead ? static_cast<int>(q) : -1;
    qConfig.seed = quantizerSeed(config.seed, job.layer, job.kind, head);
    job.quantizers.push_back(trainQuantizer(samples[q], info.headDim, job.channelOrder, job.channelWeights,
                                            qConfig, head, backend, &trainCtl));
  }
}

// Evaluate: stream the held-out tokens through the quantizers and the baselines
// (progress [trainSpan, 1] of control).
void evaluateHeldOut(const DumpReader& reader, const StudyOptions& options, const TokenSplit& split,
                     double trainSpan, const TaskControl* control, JobEvaluator& eval,
                     const LayerKindResult& job) {
  const std::string label = jobLabel(job.layer, job.kind);
  const int64_t chunk = evalChunkTokens(options, reader.info().tokens);
  int64_t done = 0;
  for (const TokenRange& range : split.heldOut) {
    for (int64_t t0 = range.begin; t0 < range.end; t0 += chunk) {
      checkCancel(control);
      const Slab slab = reader.read(job.layer, job.kind, t0, std::min(chunk, range.end - t0));
      eval.addChunk(slab);
      done += slab.tokens;
      reportProgress(control, trainSpan + (1.0 - trainSpan) * static_cast<double>(done) / split.heldOutTokens,
                     label + " evaluating");
    }
  }
}

// Summarise: error by depth (all heads and per head), usage, baselines, bits.
void summarise(const JobEvaluator& eval, const StudyOptions& options, const DumpInfo& info,
               const TokenSplit& split, LayerKindResult& job) {
  const RvqConfig& config = options.config;
  const int K = config.depth, H = info.numKvHeads;
  for (int k = 1; k <= K; ++k) job.byDepth.push_back(eval.depth.sums(k));
  job.perHeadByDepth.assign(static_cast<size_t>(H), {});
  for (int h = 0; h < H; ++h) {
    for (int k = 1; k <= K; ++k) job.perHeadByDepth[h].push_back(eval.depth.sums(h, k));
  }
  for (size_t q = 0; q < job.quantizers.size(); ++q) job.quantizers[q].usage = eval.usage[q].stages();
  for (size_t b = 0; b < options.baselineBits.size(); ++b) {
    BaselineResult br;
    br.bits = options.baselineBits[b];
    br.groupSize = job.kind == Kind::Keys ? options.baselineTokenGroup : options.baselineChannelGroup;
    br.bitsPerChannel = scalarBitsPerChannel(br.bits, br.groupSize);
    br.compressionRatio = 16.0 / br.bitsPerChannel;
    br.error = eval.baselines[b].sums();
    job.baselines.push_back(br);
  }
  const int quantizerCount = static_cast<int>(job.quantizers.size());
  job.evalVectors = split.heldOutTokens * H;
  job.bitsPerChannel = rvqBitsPerChannel(config.codebookSize, K, config.groupSize, info.headDim);
  job.compressionRatio = compressionRatio(job.bitsPerChannel);
  job.codebookBits = quantizerCount * codebookStorageBits(config.codebookSize, K, config.groupSize);
  job.amortisedBitsPerChannel =
      amortisedBitsPerChannel(job.bitsPerChannel, quantizerCount, config.codebookSize, K, config.groupSize,
                              info.tokens * H, info.headDim);
  if (!job.channelMeans.empty()) {  // the [H, D] float32 means are stored with the codebooks
    const double meanBits = 32.0 * static_cast<double>(job.channelMeans.size());
    job.codebookBits += meanBits;
    job.amortisedBitsPerChannel += meanBits / (static_cast<double>(info.tokens) * H * info.headDim);
  }
  job.amortisedCompressionRatio = 16.0 / job.amortisedBitsPerChannel;
}

// One layer x kind: obtain its quantizers, evaluate them on the held-out tokens,
// summarise.
LayerKindResult runJob(const DumpReader& reader, const StudyOptions& options, const TokenSplit& split,
                       int layer, Kind kind, const QuantizerSet* existing, Backend& backend,
                       const TaskControl* control) {
  LayerKindResult job;
  job.layer = layer;
  job.kind = kind;
  job.grouping = options.config.grouping(kind);
  const double trainSpan = existing != nullptr ? 0.0 : 0.7;
  const auto trainStart = Clock::now();
  obtainQuantizers(reader, options, split, existing, backend, trainSpan, control, job);
  job.trainSeconds = existing != nullptr ? 0.0 : secondsSince(trainStart);

  const auto evalStart = Clock::now();
  JobEvaluator eval(options, reader.info(), kind, job, job.quantizers, backend);
  evaluateHeldOut(reader, options, split, trainSpan, control, eval, job);
  job.evalSeconds = secondsSince(evalStart);
  summarise(eval, options, reader.info(), split, job);
  return job;
}

StudyResult studyShell(const DumpReader& reader, const StudyOptions& options, Backend& backend) {
  const DumpInfo& info = reader.info();
  StudyResult result;
  result.config = options.config;
  result.dumpPath = info.path;
  result.model = info.model;
  result.headDim = info.headDim;
  result.numKvHeads = info.numKvHeads;
  result.tokens = info.tokens;
  result.split = splitTokens(info.tokens, info.sequenceStarts, options.config.heldOutFraction);
  result.baselineBits = options.baselineBits;
  result.baselineTokenGroup = options.baselineTokenGroup;
  result.baselineChannelGroup = options.baselineChannelGroup;
  result.backendName = backend.name();
  return result;
}

}  // namespace

TokenSplit splitTokens(int64_t tokens, const std::vector<int64_t>& sequenceStarts, double heldOutFraction) {
  if (!(heldOutFraction >= 0.0 && heldOutFraction < 1.0)) {
    throwBadInput("", "held_out_fraction", "must be in [0, 1)");
  }
  TokenSplit split;
  split.heldOutFraction = heldOutFraction;
  split.perSequence = !sequenceStarts.empty();
  // Sequence boundaries, with 0 first (tokens before the first start form a sequence).
  std::vector<int64_t> starts(sequenceStarts.size() + 1, 0);
  std::copy(sequenceStarts.begin(), sequenceStarts.end(), starts.begin() + 1);
  for (size_t s = 0; s < starts.size(); ++s) {
    const int64_t begin = starts[s];
    const int64_t end = s + 1 < starts.size() ? starts[s + 1] : tokens;
    if (end <= begin) continue;
    if (heldOutFraction == 0.0) {
      split.train.push_back({begin, end});
      split.heldOut.push_back({begin, end});
      continue;
    }
    const int64_t held = std::llround(heldOutFraction * static_cast<double>(end - begin));
    if (end - held > begin) split.train.push_back({begin, end - held});
    if (held > 0) split.heldOut.push_back({end - held, end});
  }
  for (const TokenRange& r : split.train) split.trainTokens += r.size();
  for (const TokenRange& r : split.heldOut) split.heldOutTokens += r.size();
  if (split.trainTokens == 0) throwBadInput("", "held_out_fraction", "no training tokens are left");
  if (split.heldOutTokens == 0) {
    throwBadInput("", "held_out_fraction",
                  "the fraction holds out no token (sequences too short); raise it or use 0");
  }
  return split;
}

void checkPoolable(const DumpInfo& first, const DumpInfo& other, const std::vector<int>& layers,
                   bool needQueries) {
  const auto exact = [](double v) {  // every digit: values that differ print differently
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v);
    return std::string(text);
  };
  const auto optional = [&](const auto& v) {
    return v ? exact(static_cast<double>(*v)) : std::string("absent");
  };
  std::string firstFreq, otherFreq;
  for (double f : first.ropeInvFreq) firstFreq += exact(f) + " ";
  for (double f : other.ropeInvFreq) otherFreq += exact(f) + " ";
  const std::vector<std::pair<const char*, std::pair<std::string, std::string>>> fields = {
      {"head_dim", {std::to_string(first.headDim), std::to_string(other.headDim)}},
      {"num_kv_heads", {std::to_string(first.numKvHeads), std::to_string(other.numKvHeads)}},
      {"num_layers", {std::to_string(first.numLayers), std::to_string(other.numLayers)}},
      {"num_q_heads", {std::to_string(first.numQHeads), std::to_string(other.numQHeads)}},
      {"key_rope", {first.keyRope, other.keyRope}},
      {"rope_theta", {optional(first.ropeTheta), optional(other.ropeTheta)}},
      {"rope_dim", {optional(first.ropeDim), optional(other.ropeDim)}},
      {"rope_layout", {first.ropeLayout, other.ropeLayout}},
  };
  for (const auto& [field, values] : fields) {
    if (values.first != values.second) {
      throwBadInput(other.path, field,
                    values.second + " differs from " + values.first + " in " + first.path +
                        ": their training tokens cannot be pooled");
    }
  }
  if (firstFreq != otherFreq) {
    throwBadInput(other.path, "rope_inv_freq",
                  "differs from that of " + first.path + ": their training tokens cannot be pooled");
  }
  for (int layer : layers) {
    if (std::find(other.layers.begin(), other.layers.end(), layer) == other.layers.end()) {
      throwBadInput(other.path, "layers",
                    "layer " + std::to_string(layer) + " of " + first.path + " is not in this dump");
    }
  }
  if (needQueries && !other.hasQueries) {
    throwBadInput(other.path, "queries",
                  "query_aware keys need queries in every training dump, and this one stores none (" +
                      first.path + " does)");
  }
}

ErrorSums StudyResult::total(int depth, const Kind* kind) const {
  ErrorSums sum;
  for (const LayerKindResult& job : jobs) {
    if (kind != nullptr && job.kind != *kind) continue;
    if (depth >= 1 && depth <= static_cast<int>(job.byDepth.size())) sum.merge(job.byDepth[depth - 1]);
  }
  return sum;
}

StudyResult runStudy(const DumpReader& reader, const StudyOptions& options, Backend& backend,
                     const TaskControl* control) {
  const auto start = Clock::now();
  validateOptions(reader.info(), options);
  const std::vector<int> layers = resolveLayers(reader.info(), options.layers);
  if (options.attention.enabled) checkAttentionInputs(reader, layers);  // before any training
  for (const DumpReader* other : options.alsoTrainOn) {
    checkPoolable(reader.info(), other->info(), layers, options.config.queryAware);
  }
  StudyResult result = studyShell(reader, options, backend);
  for (const DumpReader* other : options.alsoTrainOn) result.alsoTrainedOn.push_back(other->info().path);
  const double jobs = static_cast<double>(layers.size() * options.kinds.size());
  const double span = options.attention.enabled ? 0.8 : 1.0;
  size_t index = 0;
  for (int layer : layers) {
    for (Kind kind : options.kinds) {
      const TaskControl ctl = subControl(control, span * static_cast<double>(index) / jobs, span / jobs, "");
      result.jobs.push_back(runJob(reader, options, result.split, layer, kind, nullptr, backend, &ctl));
      ++index;
    }
  }
  addAttention(reader, options, backend, span, control, result);
  reportProgress(control, 1.0, "done");
  result.totalSeconds = secondsSince(start);
  return result;
}

StudyResult evaluateCodebooks(const DumpReader& reader, const std::vector<QuantizerSet>& sets,
                              const std::string& codebooksPath, const StudyOptions& options, Backend& backend,
                              const TaskControl* control) {
  const auto start = Clock::now();
  const DumpInfo& info = reader.info();
  validateOptions(info, options);
  const RvqConfig& config = options.config;
  std::vector<const QuantizerSet*> selected;
  for (const QuantizerSet& set : sets) {
    const bool layerWanted = options.layers.empty() || std::find(options.layers.begin(), options.layers.end(),
                                                                 set.layer) != options.layers.end();
    const bool kindWanted =
        std::find(options.kinds.begin(), options.kinds.end(), set.kind) != options.kinds.end();
    if (!layerWanted || !kindWanted) continue;
    const std::string where = "layer " + std::to_string(set.layer) + " " + kindName(set.kind);
    resolveLayers(info, {set.layer});
    if (static_cast<int>(set.channelOrder.size()) != info.headDim) {
      throwBadInput(codebooksPath, where, "channel order length differs from the dump's head_dim");
    }
    const size_t expected = config.perHead ? static_cast<size_t>(info.numKvHeads) : 1;
    if (set.codebooks.size() != expected)
      throwBadInput(codebooksPath, where, "quantizer count does not match the dump's heads");
    if (!set.channelMeans.empty() &&
        set.channelMeans.size() != static_cast<size_t>(info.numKvHeads) * static_cast<size_t>(info.headDim))
      throwBadInput(codebooksPath, where, "channel means are for another number of kv heads than the dump's");
    for (const Codebooks& books : set.codebooks) {
      if (books.depth != config.depth || books.size != config.codebookSize || books.dim != config.groupSize) {
        throwBadInput(codebooksPath, where, "codebook shape differs from the stored configuration");
      }
    }
    selected.push_back(&set);
  }
  if (selected.empty())
    throwBadInput("", "layers", "no stored quantizer matches the selected layers and kinds");
  StudyResult result = studyShell(reader, options, backend);
  result.codebooksPath = codebooksPath;
  const double span = options.attention.enabled ? 0.5 : 1.0;
  if (options.attention.enabled) {
    std::vector<int> layers;
    layers.reserve(selected.size());
    for (const QuantizerSet* set : selected) layers.push_back(set->layer);
    checkAttentionInputs(reader, layers);
  }
  for (size_t i = 0; i < selected.size(); ++i) {
    const double n = static_cast<double>(selected.size());
    const TaskControl ctl = subControl(control, span * static_cast<double>(i) / n, span / n, "");
    result.jobs.push_back(runJob(reader, options, result.split, selected[i]->layer, selected[i]->kind,
                                 selected[i], backend, &ctl));
  }
  addAttention(reader, options, backend, span, control, result);
  reportProgress(control, 1.0, "done");
  result.totalSeconds = secondsSince(start);
  return result;
}

std::vector<QuantizerSet> quantizerSets(const StudyResult& result) {
  std::vector<QuantizerSet> sets;
  for (const LayerKindResult& job : result.jobs) {
    QuantizerSet set;
    set.layer = job.layer;
    set.kind = job.kind;
    set.channelOrder = job.channelOrder;
    set.channelWeights = job.channelWeights;
    set.channelMeans = job.channelMeans;
    for (const QuantizerResult& q : job.quantizers) set.codebooks.push_back(q.codebooks);
    sets.push_back(std::move(set));
  }
  return sets;
}

}  // namespace kvq
