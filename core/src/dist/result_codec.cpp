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
static_assert(sizeof(LayerKindResult) == 248, "LayerKindResult changed: update result_codec.cpp");
static_assert(sizeof(QuantizerResult) == 160, "QuantizerResult changed: update result_codec.cpp");
static_assert(sizeof(TrainStats) == 80, "TrainStats changed: update result_codec.cpp");
static_assert(sizeof(StageUsage) == 56, "StageUsage changed: update result_codec.cpp");
static_assert(sizeof(ErrorSums) == 32, "ErrorSums changed: update result_codec.cpp");
static_assert(sizeof(BaselineResult) == 56, "BaselineResult changed: update result_codec.cpp");
#endif

constexpr uint32_t kMagic = 0x4b565131;  // "KVQ1"

// Writer and Reader walk the same field lists (the *Fields functions below), so encoding and
// decoding cannot disagree on an order or a type: field() takes a trivially copyable value or a
// vector of them (its length first), fields() several in order, records() a vector of structs (its
// length, then each).
class Writer {
 public:
  template <class T>
  void field(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const char*>(&value);
    m_bytes.append(p, sizeof(T));
  }
  template <class T>
  void field(const std::vector<T>& values) {
    static_assert(std::is_trivially_copyable_v<T>);
    field<uint64_t>(values.size());
    if (!values.empty())
      m_bytes.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  }
  template <class... T>
  void fields(const T&... values) {
    (field(values), ...);
  }
  template <class T, class Fields>
  void records(const std::vector<T>& values, Fields each) {
    field<uint64_t>(values.size());
    for (const T& value : values) each(*this, value);
  }
  std::string take() { return std::move(m_bytes); }

 private:
  std::string m_bytes;
};

class Reader {
 public:
  explicit Reader(const std::string& bytes) : m_bytes(bytes) {}
  template <class T>
  void field(T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    need(sizeof(T));
    std::memcpy(&value, m_bytes.data() + m_pos, sizeof(T));
    m_pos += sizeof(T);
  }
  template <class T>
  void field(std::vector<T>& values) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto count = length();
    if (count > (m_bytes.size() - m_pos) / sizeof(T)) bad("a list longer than the message");
    values.resize(static_cast<size_t>(count));
    if (count > 0) std::memcpy(values.data(), m_bytes.data() + m_pos, static_cast<size_t>(count) * sizeof(T));
    m_pos += static_cast<size_t>(count) * sizeof(T);
  }
  template <class... T>
  void fields(T&... values) {
    (field(values), ...);
  }
  template <class T, class Fields>
  void records(std::vector<T>& values, Fields each) {
    const auto count = length();
    for (uint64_t i = 0; i < count; ++i) each(*this, values.emplace_back());
  }
  bool atEnd() const { return m_pos == m_bytes.size(); }
  [[noreturn]] static void bad(const std::string& what) { throwInternal("job result message", what); }

 private:
  uint64_t length() {
    uint64_t count = 0;
    field(count);
    return count;
  }
  void need(size_t n) const {
    if (n > m_bytes.size() - m_pos) bad("truncated");
  }
  const std::string& m_bytes;
  size_t m_pos = 0;
};

// The fields of each struct in message order; Io is Writer (const structs) or Reader.
template <class Io, class Sums>
void sumsFields(Io& io, Sums& e) {
  io.fields(e.errorEnergy, e.signalEnergy, e.cosineSum, e.vectors);
}

template <class Io, class Usage>
void usageFields(Io& io, Usage& u) {
  io.fields(u.histogram, u.total, u.fractionUsed, u.perplexity, u.deadEntries);
}

template <class Io, class Quantizer>
void quantizerFields(Io& io, Quantizer& q) {
  io.fields(q.head, q.codebooks.depth, q.codebooks.size, q.codebooks.dim, q.codebooks.data,
            q.train.stageErrorAfterInit, q.train.stageErrorAfterEma, q.train.reseeded, q.train.seconds,
            q.trainVectors);
  io.records(q.usage, [](auto& i, auto& u) { usageFields(i, u); });
}

template <class Io, class Baseline>
void baselineFields(Io& io, Baseline& b) {
  io.fields(b.bits, b.groupSize, b.bitsPerChannel, b.compressionRatio);
  sumsFields(io, b.error);
}

template <class Io, class Job>
void jobFields(Io& io, Job& job) {
  const auto sums = [](auto& i, auto& e) { sumsFields(i, e); };
  io.fields(job.layer, job.kind, job.grouping, job.channelOrder, job.channelWeights, job.channelMeans);
  io.records(job.quantizers, [](auto& i, auto& q) { quantizerFields(i, q); });
  io.records(job.byDepth, sums);
  io.records(job.perHeadByDepth, [&](auto& i, auto& head) { i.records(head, sums); });
  io.records(job.baselines, [](auto& i, auto& b) { baselineFields(i, b); });
  io.fields(job.bitsPerChannel, job.compressionRatio, job.codebookBits, job.amortisedBitsPerChannel,
            job.amortisedCompressionRatio, job.evalVectors, job.trainSeconds, job.evalSeconds);
}

}  // namespace

std::string encodeJobResult(const LayerKindResult& job) {
  Writer w;
  w.field(kMagic);
  jobFields(w, job);
  return w.take();
}

LayerKindResult decodeJobResult(const std::string& bytes) {
  Reader r(bytes);
  uint32_t magic = 0;
  r.field(magic);
  if (magic != kMagic) Reader::bad("not a job result");
  LayerKindResult job;
  jobFields(r, job);
  if (!r.atEnd()) Reader::bad("bytes after the end");
  return job;
}

}  // namespace kvq
