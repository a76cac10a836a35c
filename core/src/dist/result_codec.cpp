#include "kvq/dist/result_codec.h"

#include <cstring>
#include <type_traits>
#include <vector>

#include "kvq/base/error.h"

namespace kvq {
namespace {

// A new field of these structs must be encoded below (and decoded): this fails to
// compile when one changes size (on the one platform where the sizes are known).
#if defined(__GLIBCXX__) && defined(__x86_64__)
static_assert(sizeof(LayerKindResult) == 224, "LayerKindResult changed: update result_codec.cpp");
static_assert(sizeof(QuantizerResult) == 160, "QuantizerResult changed: update result_codec.cpp");
static_assert(sizeof(TrainStats) == 80, "TrainStats changed: update result_codec.cpp");
static_assert(sizeof(StageUsage) == 56, "StageUsage changed: update result_codec.cpp");
static_assert(sizeof(ErrorSums) == 32, "ErrorSums changed: update result_codec.cpp");
static_assert(sizeof(BaselineResult) == 56, "BaselineResult changed: update result_codec.cpp");
#endif

constexpr uint32_t kMagic = 0x4b565131;  // "KVQ1"

class Writer {
 public:
  template <class T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const char*>(&value);
    m_bytes.append(p, sizeof(T));
  }
  template <class T>
  void putVector(const std::vector<T>& values) {
    put<uint64_t>(values.size());
    if (!values.empty())
      m_bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  }
  std::string take() { return std::move(m_bytes); }

 private:
  std::string m_bytes;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : m_bytes(bytes) {}
  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    need(sizeof(T));
    std::memcpy(&value, m_bytes.data() + m_pos, sizeof(T));
    m_pos += sizeof(T);
    return value;
  }
  template <class T>
  std::vector<T> getVector() {
    const auto count = get<uint64_t>();
    if (count > (m_bytes.size() - m_pos) / sizeof(T)) bad("a list longer than the message");
    std::vector<T> values(static_cast<size_t>(count));
    if (count > 0) std::memcpy(values.data(), m_bytes.data() + m_pos, static_cast<size_t>(count) * sizeof(T));
    m_pos += static_cast<size_t>(count) * sizeof(T);
    return values;
  }
  bool atEnd() const { return m_pos == m_bytes.size(); }
  [[noreturn]] static void bad(const std::string& what) { throwInternal("job result message", what); }

 private:
  void need(size_t n) const {
    if (n > m_bytes.size() - m_pos) bad("truncated");
  }
  const std::string& m_bytes;
  size_t m_pos = 0;
};

void putSums(Writer& w, const ErrorSums& e) {
  w.put(e.errorEnergy);
  w.put(e.signalEnergy);
  w.put(e.cosineSum);
  w.put(e.vectors);
}

ErrorSums getSums(Reader& r) {
  ErrorSums e;
  e.errorEnergy = r.get<double>();
  e.signalEnergy = r.get<double>();
  e.cosineSum = r.get<double>();
  e.vectors = r.get<int64_t>();
  return e;
}

void putQuantizer(Writer& w, const QuantizerResult& q) {
  w.put(q.head);
  w.put(q.codebooks.depth);
  w.put(q.codebooks.size);
  w.put(q.codebooks.dim);
  w.putVector(q.codebooks.data);
  w.putVector(q.train.stageErrorAfterInit);
  w.putVector(q.train.stageErrorAfterEma);
  w.putVector(q.train.reseeded);
  w.put(q.train.seconds);
  w.put(q.trainVectors);
  w.put<uint64_t>(q.usage.size());
  for (const StageUsage& u : q.usage) {
    w.putVector(u.histogram);
    w.put(u.total);
    w.put(u.fractionUsed);
    w.put(u.perplexity);
    w.put(u.deadEntries);
  }
}

QuantizerResult getQuantizer(Reader& r) {
  QuantizerResult q;
  q.head = r.get<int>();
  q.codebooks.depth = r.get<int>();
  q.codebooks.size = r.get<int>();
  q.codebooks.dim = r.get<int>();
  q.codebooks.data = r.getVector<float>();
  q.train.stageErrorAfterInit = r.getVector<double>();
  q.train.stageErrorAfterEma = r.getVector<double>();
  q.train.reseeded = r.getVector<int>();
  q.train.seconds = r.get<double>();
  q.trainVectors = r.get<int64_t>();
  const auto stages = r.get<uint64_t>();
  for (uint64_t k = 0; k < stages; ++k) {
    StageUsage u;
    u.histogram = r.getVector<int64_t>();
    u.total = r.get<int64_t>();
    u.fractionUsed = r.get<double>();
    u.perplexity = r.get<double>();
    u.deadEntries = r.get<int>();
    q.usage.push_back(std::move(u));
  }
  return q;
}

}  // namespace

std::string encodeJobResult(const LayerKindResult& job) {
  Writer w;
  w.put(kMagic);
  w.put(job.layer);
  w.put(job.kind);
  w.put(job.grouping);
  w.putVector(job.channelOrder);
  w.putVector(job.channelWeights);
  w.put<uint64_t>(job.quantizers.size());
  for (const QuantizerResult& q : job.quantizers) putQuantizer(w, q);
  w.put<uint64_t>(job.byDepth.size());
  for (const ErrorSums& e : job.byDepth) putSums(w, e);
  w.put<uint64_t>(job.perHeadByDepth.size());
  for (const std::vector<ErrorSums>& head : job.perHeadByDepth) {
    w.put<uint64_t>(head.size());
    for (const ErrorSums& e : head) putSums(w, e);
  }
  w.put<uint64_t>(job.baselines.size());
  for (const BaselineResult& b : job.baselines) {
    w.put(b.bits);
    w.put(b.groupSize);
    w.put(b.bitsPerChannel);
    w.put(b.compressionRatio);
    putSums(w, b.error);
  }
  for (double v : {job.bitsPerChannel, job.compressionRatio, job.codebookBits, job.amortisedBitsPerChannel,
                   job.amortisedCompressionRatio})
    w.put(v);
  w.put(job.evalVectors);
  w.put(job.trainSeconds);
  w.put(job.evalSeconds);
  return w.take();
}

LayerKindResult decodeJobResult(const std::string& bytes) {
  Reader r(bytes);
  if (r.get<uint32_t>() != kMagic) Reader::bad("not a job result");
  LayerKindResult job;
  job.layer = r.get<int>();
  job.kind = r.get<Kind>();
  job.grouping = r.get<Grouping>();
  job.channelOrder = r.getVector<int>();
  job.channelWeights = r.getVector<float>();
  const auto quantizers = r.get<uint64_t>();
  for (uint64_t q = 0; q < quantizers; ++q) job.quantizers.push_back(getQuantizer(r));
  const auto depths = r.get<uint64_t>();
  for (uint64_t k = 0; k < depths; ++k) job.byDepth.push_back(getSums(r));
  const auto heads = r.get<uint64_t>();
  for (uint64_t h = 0; h < heads; ++h) {
    const auto n = r.get<uint64_t>();
    std::vector<ErrorSums> head;
    for (uint64_t k = 0; k < n; ++k) head.push_back(getSums(r));
    job.perHeadByDepth.push_back(std::move(head));
  }
  const auto baselines = r.get<uint64_t>();
  for (uint64_t i = 0; i < baselines; ++i) {
    BaselineResult b;
    b.bits = r.get<int>();
    b.groupSize = r.get<int>();
    b.bitsPerChannel = r.get<double>();
    b.compressionRatio = r.get<double>();
    b.error = getSums(r);
    job.baselines.push_back(b);
  }
  for (double* v : {&job.bitsPerChannel, &job.compressionRatio, &job.codebookBits,
                    &job.amortisedBitsPerChannel, &job.amortisedCompressionRatio})
    *v = r.get<double>();
  job.evalVectors = r.get<int64_t>();
  job.trainSeconds = r.get<double>();
  job.evalSeconds = r.get<double>();
  if (!r.atEnd()) Reader::bad("bytes after the end");
  return job;
}

}  // namespace kvq
