// DumpReader: open-time validation (dump_validate.cpp does the structure) and
// lazy hyperslab reads converted to float32.
#include "kvq/dump/dump_reader.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "dump/dump_validate.h"
#include "kvq/base/error.h"
#include "kvq/base/half.h"
#include "kvq/base/step_trace.h"

namespace kvq {

using detail::DatasetEntry;

DumpReader::DumpReader() : m_impl(std::make_unique<Impl>()) {}
DumpReader::~DumpReader() = default;

const DumpInfo& DumpReader::info() const {
  return m_impl->info;
}

const FileIdentity& DumpReader::identity() const {
  return m_impl->pinned->identity();
}

std::unique_ptr<DumpReader> DumpReader::open(const std::string& path, const OpenOptions& options) {
  h5::ErrorSilencer silence;
  std::unique_ptr<DumpReader> reader(new DumpReader());
  Impl& impl = *reader->m_impl;
  impl.options = options;
  detail::validateDump(path, impl);
  if (options.scanValues) detail::scanValues(impl, options.control);
  return reader;
}

namespace detail {

const DatasetEntry& ReaderImpl::dataset(int layer, Kind kind) const {
  const auto it = layers.find(layer);
  const std::string where = "/layers/" + std::to_string(layer);
  if (it == layers.end())
    throwBadInput(info.path, where, "layer " + std::to_string(layer) + " is not in this dump");
  const auto& entry = it->second[static_cast<size_t>(kind)];
  if (!entry) throwBadInput(info.path, where + "/" + kindName(kind), "not present in this dump");
  return *entry;
}

namespace {

// Converts n 16-bit values stored at byte offset 2n of a float buffer of n
// elements into float32 in place. Ascending order is safe: writing float i
// (bytes 4i..4i+3) only overwrites 16-bit inputs with index <= i, already read.
void widenInPlace(float* data, size_t n, DType dtype, size_t first = 0) {
  auto* bytes = reinterpret_cast<unsigned char*>(data);
  const unsigned char* raw = bytes + 2 * n;
  for (size_t i = first; i < n; ++i) {
    uint16_t v;
    std::memcpy(&v, raw + 2 * i, sizeof v);
    const float f = dtype == DType::Float16 ? halfToFloat(v) : bfloat16ToFloat(v);
    std::memcpy(bytes + 4 * i, &f, sizeof f);
  }
}

// The same for IEEE half with the F16C instruction (exact, as halfToFloat), eight
// values at a time: each block's inputs are loaded before its outputs are stored,
// and the stores of block i end below the inputs of block i + 1 (4i + 32 <=
// 2n + 2i + 16 while i + 8 <= n). Decoding was a sixth of a dump's open time.
__attribute__((target("avx,f16c"))) void widenHalfF16c(float* data, size_t n) {
  auto* bytes = reinterpret_cast<unsigned char*>(data);
  const unsigned char* raw = bytes + 2 * n;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i half = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + 2 * i));
    _mm256_storeu_ps(reinterpret_cast<float*>(bytes + 4 * i), _mm256_cvtph_ps(half));
  }
  widenInPlace(data, n, DType::Float16, i);
}

// F16C is CPUID leaf 1, ECX bit 29 (not every compiler's __builtin_cpu_supports
// knows it); "avx" also checks that the OS saves the YMM registers.
bool haveF16c() {
  static const bool have = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx") && __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 29)) != 0;
  }();
  return have;
}

}  // namespace

void ReaderImpl::readInto(const DatasetEntry& entry, int64_t tokenBegin, int64_t tokenCount, int head,
                          Slab& slab) const {
  const int heads = head >= 0 ? 1 : entry.heads;
  const int dim = info.headDim;
  slab.tokenBegin = tokenBegin;
  slab.tokens = tokenCount;
  slab.heads = heads;
  slab.dim = dim;
  const size_t n = static_cast<size_t>(tokenCount) * static_cast<size_t>(heads) * static_cast<size_t>(dim);
  slab.data.resize(n);
  if (n == 0) return;

  pinned->requireUnchanged();
  if (stepTracing()) {
    traceStep("reading " + entry.path + " tokens [" + std::to_string(tokenBegin) + ", " +
              std::to_string(tokenBegin + tokenCount) + ")");
  }
  h5::Dataspace fileSpace(H5Dget_space(entry.dataset.get()));
  const hsize_t start[3] = {static_cast<hsize_t>(tokenBegin), static_cast<hsize_t>(std::max(head, 0)), 0};
  const hsize_t count[3] = {static_cast<hsize_t>(tokenCount), static_cast<hsize_t>(heads),
                            static_cast<hsize_t>(dim)};
  h5::Dataspace memSpace(H5Screate_simple(3, count, nullptr));
  const bool narrow = info.dtype != DType::Float32;
  // 16-bit data lands raw in the upper half of the float buffer (the memory
  // type equals the file type, so HDF5 only copies bytes) and is widened in place.
  void* target = narrow ? static_cast<void*>(reinterpret_cast<unsigned char*>(slab.data.data()) + 2 * n)
                        : static_cast<void*>(slab.data.data());
  if (!fileSpace || !memSpace ||
      H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) < 0) {
    throwBadInput(info.path, entry.path, "cannot select tokens: " + h5::lastErrorText());
  }
  h5::readChecked(entry.dataset.get(), entry.storage, entry.memType.get(), memSpace.get(), fileSpace.get(),
                  target, h5::Location{info.path, entry.path}, "tokens", static_cast<hsize_t>(tokenBegin),
                  static_cast<hsize_t>(tokenCount));
  if (narrow && info.dtype == DType::Float16 && haveF16c()) {
    widenHalfF16c(slab.data.data(), n);
  } else if (narrow) {
    widenInPlace(slab.data.data(), n, info.dtype);
  }
}

// Tokens per block for streaming: about 16 MiB of float32, a multiple of the
// writer's 1024-token chunks when that large, capped by maxReadBytes.
int64_t ReaderImpl::streamChunkTokens(int heads, int64_t requested) const {
  const uint64_t tokenBytes = static_cast<uint64_t>(heads) * static_cast<uint64_t>(info.headDim) * 4;
  const auto maxByLimit = static_cast<int64_t>(std::max<uint64_t>(1, options.maxReadBytes / tokenBytes));
  return std::max<int64_t>(1, std::min({requested, maxByLimit, info.tokens}));
}

void scanValues(ReaderImpl& impl, const TaskControl* control) {
  const DumpInfo& info = impl.info;
  int64_t totalTokens = 0;
  for (const auto& [index, kinds] : impl.layers) {
    for (const auto& entry : kinds) {
      if (entry) totalTokens += entry->rows;
    }
  }
  int64_t doneTokens = 0;
  Slab slab;
  for (const auto& [index, kinds] : impl.layers) {
    for (const auto& entry : kinds) {
      if (!entry) continue;
      const uint64_t tokenBytes =
          static_cast<uint64_t>(entry->heads) * static_cast<uint64_t>(info.headDim) * 4;
      int64_t chunk = static_cast<int64_t>(std::max<uint64_t>(1, (uint64_t{16} << 20) / tokenBytes));
      if (chunk >= 1024) chunk -= chunk % 1024;
      chunk = impl.streamChunkTokens(entry->heads, chunk);
      for (int64_t t = 0; t < entry->rows; t += chunk) {
        checkCancel(control);
        const int64_t n = std::min(chunk, entry->rows - t);
        impl.readInto(*entry, t, n, -1, slab);
        const auto bad =
            std::find_if(slab.data.begin(), slab.data.end(), [](float v) { return !std::isfinite(v); });
        if (bad != slab.data.end()) {
          const auto i = static_cast<int64_t>(bad - slab.data.begin());
          const int64_t perToken = static_cast<int64_t>(entry->heads) * info.headDim;
          const char* what = std::isnan(*bad) ? "NaN" : (*bad > 0 ? "Inf" : "-Inf");
          const int64_t row = t + i / perToken;
          // Query rows name their token too when /query_positions selects them.
          const bool mapped = entry->kind == Kind::Queries && !info.queryPositions.empty();
          const std::string at = mapped
                                     ? "row " + std::to_string(row) + " (token " +
                                           std::to_string(info.queryPositions[static_cast<size_t>(row)]) + ")"
                                     : "token " + std::to_string(row);
          throwBadInput(info.path, entry->path,
                        std::string(what) + " at " + at + ", head " +
                            std::to_string((i % perToken) / info.headDim) + ", channel " +
                            std::to_string(i % info.headDim));
        }
        doneTokens += n;
        reportProgress(control, static_cast<double>(doneTokens) / static_cast<double>(totalTokens),
                       "checking values");
      }
    }
  }
}

}  // namespace detail

Slab DumpReader::read(int layer, Kind kind, int64_t tokenBegin, int64_t tokenCount, int head) const {
  h5::ErrorSilencer silence;
  const Impl& impl = *m_impl;
  const DatasetEntry& entry = impl.dataset(layer, kind);
  const int64_t total = entry.rows;
  if (tokenCount < 0 && tokenBegin >= 0 && tokenBegin <= total) tokenCount = total - tokenBegin;
  if (tokenBegin < 0 || tokenCount < 0 || tokenBegin > total || tokenCount > total - tokenBegin) {
    // The end for the message, without signed overflow for absurd requests.
    const std::string end =
        tokenCount < 0 ? std::to_string(total)
        : tokenBegin >= 0
            ? std::to_string(static_cast<uint64_t>(tokenBegin) + static_cast<uint64_t>(tokenCount))
            : std::to_string(tokenBegin + tokenCount);
    throwBadInput(impl.info.path, entry.path,
                  "token range [" + std::to_string(tokenBegin) + ", " + end + ") is outside [0, " +
                      std::to_string(total) + ")");
  }
  if (head >= entry.heads || head < -1) {
    throwBadInput(impl.info.path, entry.path,
                  "head " + std::to_string(head) + " is outside [0, " + std::to_string(entry.heads) + ")");
  }
  const uint64_t bytes = static_cast<uint64_t>(tokenCount) *
                         static_cast<uint64_t>(head >= 0 ? 1 : entry.heads) *
                         static_cast<uint64_t>(impl.info.headDim) * 4;
  if (bytes > impl.options.maxReadBytes) {
    throwBadInput(impl.info.path, entry.path,
                  "a read of " + std::to_string(bytes) + " bytes exceeds the limit of " +
                      std::to_string(impl.options.maxReadBytes) + " bytes (OpenOptions::maxReadBytes)");
  }
  Slab slab;
  impl.readInto(entry, tokenBegin, tokenCount, head, slab);
  return slab;
}

void DumpReader::forEachChunk(int layer, Kind kind, int64_t chunkTokens,
                              const std::function<void(const Slab&)>& visit,
                              const TaskControl* control) const {
  h5::ErrorSilencer silence;
  const Impl& impl = *m_impl;
  const DatasetEntry& entry = impl.dataset(layer, kind);
  if (chunkTokens <= 0) throwBadInput(impl.info.path, entry.path, "chunkTokens must be positive");
  const int64_t chunk = impl.streamChunkTokens(entry.heads, chunkTokens);
  const int64_t total = entry.rows;
  Slab slab;  // reused: one allocation for the whole pass
  for (int64_t t = 0; t < total; t += chunk) {
    checkCancel(control);
    impl.readInto(entry, t, std::min(chunk, total - t), -1, slab);
    visit(slab);
    reportProgress(control, static_cast<double>(std::min(t + chunk, total)) / static_cast<double>(total),
                   std::string("reading ") + entry.path);
  }
}

bool DumpReader::has(int layer, Kind kind) const {
  const auto it = m_impl->layers.find(layer);
  return it != m_impl->layers.end() && it->second[static_cast<size_t>(kind)].has_value();
}

std::vector<int32_t> DumpReader::tokenIds() const {
  h5::ErrorSilencer silence;
  const Impl& impl = *m_impl;
  if (!impl.info.hasTokenIds) return {};
  const uint64_t bytes = static_cast<uint64_t>(impl.info.tokens) * 4;
  if (bytes > impl.options.maxReadBytes) {
    throwBadInput(impl.info.path, "/tokens", "reading it exceeds OpenOptions::maxReadBytes");
  }
  impl.pinned->requireUnchanged();
  traceStep("reading /tokens");
  std::vector<int32_t> ids(static_cast<size_t>(impl.info.tokens));
  h5::readAllChecked(impl.tokens.get(), impl.tokensStorage, H5T_NATIVE_INT32, ids.data(),
                     h5::Location{impl.info.path, "/tokens"}, "entries");
  return ids;
}

bool DumpReader::concurrentReadsSafe() {
  hbool_t safe = 0;
  return H5is_library_threadsafe(&safe) >= 0 && safe != 0;
}

}  // namespace kvq
