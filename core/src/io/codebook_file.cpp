// Codebook file v1 writer and reader (docs/codebook-format.md).
#include "kvq/io/codebook_file.h"

#include <algorithm>
#include <cmath>

#include "h5/h5_file.h"
#include "h5/hdf5_handle.h"
#include "io/allocation_group.h"
#include "io/config_attrs.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/rvq/preprocess.h"
#include "kvq/study/quantize_study.h"

namespace kvq {
namespace {

std::string setPath(const QuantizerSet& set) {
  return "/layers/" + std::to_string(set.layer) + "/" + kindName(set.kind);
}

constexpr int64_t kMaxCount = 1 << 20;  // as for dumps: head_dim, heads, layer groups

// The held-out metrics stored as attributes of each layer x kind group: one list of
// names, read and written from it.
struct MetricColumn {
  const char* name;
  double (*value)(const LayerKindResult& job);
};
constexpr MetricColumn kMetricColumns[] = {
    {"relative_error", [](const LayerKindResult& j) { return j.error().relativeError(); }},
    {"snr_db", [](const LayerKindResult& j) { return j.error().snrDb(); }},
    {"mean_cosine", [](const LayerKindResult& j) { return j.error().meanCosine(); }},
    {"bits_per_channel", [](const LayerKindResult& j) { return j.bitsPerChannel; }},
    {"compression_ratio", [](const LayerKindResult& j) { return j.compressionRatio; }},
    {"amortised_bits_per_channel", [](const LayerKindResult& j) { return j.amortisedBitsPerChannel; }},
    {"held_out_vectors", [](const LayerKindResult& j) { return static_cast<double>(j.evalVectors); }},
};

// also_trained_on holds one path per line.
std::string joinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += (text.empty() ? "" : "\n") + line;
  return text;
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  for (size_t end = text.find('\n'); end != std::string::npos; end = text.find('\n', begin)) {
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  lines.push_back(text.substr(begin));
  return lines;
}

// Root attributes: format, version, config, source, shapes; the config validated.
void readHeader(const h5::Reader& r, CodebookFile& file) {
  const std::string& path = r.path();
  const hid_t root = r.root();
  if (!r.hasAttr(root, "kvq_format") || r.stringAttr(root, "kvq_format") != kCodebookFormat) {
    throwBadInput(path, "/ kvq_format",
                  std::string("not a codebook file (kvq_format must be \"") + kCodebookFormat + "\")");
  }
  const int64_t version = r.intAttr(root, "kvq_format_version");
  if (version != kCodebookFormatVersion) {
    throwBadInput(path, "/ kvq_format_version",
                  "unsupported version " + std::to_string(version) + " (expected 1)");
  }
  file.config = readConfigAttrs(r, root, rvqConfigTable());
  file.sourceDump = r.stringAttr(root, "source_dump");
  if (r.hasAttr(root, "also_trained_on"))
    file.alsoTrainedOn = splitLines(r.stringAttr(root, "also_trained_on"));
  file.model = r.stringAttr(root, "model");
  const int64_t headDim = r.intAttr(root, "head_dim");
  const int64_t numKvHeads = r.intAttr(root, "num_kv_heads");
  if (headDim < 1 || headDim > kMaxCount || numKvHeads < 1 || numKvHeads > kMaxCount) {
    throwBadInput(path, "/ head_dim, num_kv_heads", "must be in [1, " + std::to_string(kMaxCount) + "]");
  }
  file.headDim = static_cast<int>(headDim);
  file.numKvHeads = static_cast<int>(numKvHeads);
  try {
    validateConfig(file.config, file.headDim);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) throw;
    rethrowAsAttribute(path, e);  // in a file the culprit is an attribute
  }
  // Shapes are checked against the config before reading; the size cap keeps a
  // hostile but consistent file (huge C, K, g) from exhausting memory.
  constexpr uint64_t kMaxCodebookBytes = uint64_t{1} << 32;
  const RvqConfig& c = file.config;
  const uint64_t bookBytes = static_cast<uint64_t>(c.depth) * static_cast<uint64_t>(c.codebookSize) *
                             static_cast<uint64_t>(c.groupSize) * sizeof(float);
  if (bookBytes > kMaxCodebookBytes) {
    throwBadInput(path, "/ codebook_size, depth, group_size",
                  "codebooks of " + std::to_string(bookBytes) + " bytes each exceed the limit of " +
                      std::to_string(kMaxCodebookBytes) + " bytes");
  }
}

int layerOfGroup(const std::string& path, const std::string& name) {
  int layer = -1;
  if (!h5::parseDecimalIndex(name, layer)) {
    throwBadInput(path, "/layers/" + name,
                  "layer group name is not a decimal layer index (digits without sign or leading zeros)");
  }
  return layer;
}

// Members named head_<n> must be exactly the per-head quantizers h = 0 … H−1 of a
// per-head file (and absent otherwise): a stray head_7 would be silently ignored.
void checkHeadGroups(const h5::Reader& r, const std::string& where, bool perHead, int quantizers) {
  for (const std::string& name : r.children(where, static_cast<size_t>(quantizers) + 16)) {
    if (name.rfind("head_", 0) != 0) continue;
    int head = -1;
    const bool known = perHead && h5::parseDecimalIndex(name.substr(5), head) && head < quantizers;
    if (!known) {
      throwBadInput(r.path(), where + "/" + name,
                    perHead ? "unknown head group (this per-head file has head_0 … head_" +
                                  std::to_string(quantizers - 1) + ")"
                            : "head group in a file whose quantizers are not per head (per_head = 0)");
    }
  }
}

// One [K, C, g] codebook dataset; every entry must be finite.
Codebooks readCodebooks(const h5::Reader& r, const std::string& dataset, const RvqConfig& c) {
  Codebooks books;  // not sized here: readFloat32 checks the shape before allocating
  books.depth = c.depth;
  books.size = c.codebookSize;
  books.dim = c.groupSize;
  books.data = r.readFloat32(dataset,
                             {static_cast<hsize_t>(c.depth), static_cast<hsize_t>(c.codebookSize),
                              static_cast<hsize_t>(c.groupSize)},
                             "stages");
  for (size_t i = 0; i < books.data.size(); ++i) {
    if (std::isfinite(books.data[i])) continue;
    const size_t perStage = static_cast<size_t>(c.codebookSize) * static_cast<size_t>(c.groupSize);
    const size_t entry = (i % perStage) / static_cast<size_t>(c.groupSize);
    throwBadInput(r.path(),
                  dataset + " stage " + std::to_string(i / perStage) + " entry " + std::to_string(entry) +
                      " channel " + std::to_string(i % static_cast<size_t>(c.groupSize)),
                  "codebook entry is not finite (NaN or Inf)");
  }
  return books;
}

// The optional dataset <where>/channel_weights: [D] positive finite float32 (query-aware keys).
std::vector<float> readChannelWeights(const h5::Reader& r, const std::string& where, int headDim,
                                      int quantizers) {
  const auto names = r.children(where, static_cast<size_t>(quantizers) + 16);
  if (std::find(names.begin(), names.end(), "channel_weights") == names.end()) return {};
  const std::string dataset = where + "/channel_weights";
  std::vector<float> weights = r.readFloat32(dataset, {static_cast<hsize_t>(headDim)}, "channels");
  checkChannelWeights(weights, headDim, r.path(), dataset);
  return weights;
}

// The optional dataset <where>/channel_means: [H, D] finite float32 (centre_channels).
std::vector<float> readChannelMeans(const h5::Reader& r, const std::string& where, int heads, int headDim,
                                    int quantizers) {
  const auto names = r.children(where, static_cast<size_t>(quantizers) + 16);
  if (std::find(names.begin(), names.end(), "channel_means") == names.end()) return {};
  const std::string dataset = where + "/channel_means";
  std::vector<float> means = r.readFloat32(
      dataset, {static_cast<hsize_t>(heads), static_cast<hsize_t>(headDim)}, "heads x channels");
  checkChannelMeans(means, heads, headDim, r.path(), dataset);
  return means;
}

// The group /layers/<layer>/<kind>: channel order (a permutation) and codebooks.
QuantizerSet readQuantizerSet(const h5::Reader& r, const CodebookFile& file, int layer,
                              const std::string& where, const std::string& kindText) {
  QuantizerSet set;
  set.layer = layer;
  try {
    set.kind = parseKind(kindText);
  } catch (const Error& e) {
    throwBadInput(r.path(), where, e.problem());
  }
  set.channelOrder = r.readInt32(where + "/channel_order", {static_cast<hsize_t>(file.headDim)}, "positions");
  std::vector<int> seen(static_cast<size_t>(file.headDim), 0);
  for (int ch : set.channelOrder) {
    if (ch < 0 || ch >= file.headDim || seen[ch]++ > 0) {
      throwBadInput(r.path(), where + "/channel_order", "not a permutation of 0..head_dim-1");
    }
  }
  const RvqConfig& c = file.config;
  const int quantizers = c.perHead ? file.numKvHeads : 1;
  checkHeadGroups(r, where, c.perHead, quantizers);
  set.channelWeights = readChannelWeights(r, where, file.headDim, quantizers);
  set.channelMeans = readChannelMeans(r, where, file.numKvHeads, file.headDim, quantizers);
  if (set.channelMeans.empty() == c.centerChannels) {
    throwBadInput(r.path(), where,
                  c.centerChannels ? "center_channels is 1 but the group has no channel_means"
                                   : "the group has channel_means but center_channels is 0");
  }
  for (int q = 0; q < quantizers; ++q) {
    const std::string dataset =
        c.perHead ? where + "/head_" + std::to_string(q) + "/codebooks" : where + "/codebooks";
    set.codebooks.push_back(readCodebooks(r, dataset, c));
  }
  return set;
}

// The informative metric attributes of a group (absent ones are skipped).
void readGroupMetrics(const h5::Reader& r, const std::string& where, CodebookFile& file) {
  const h5::Group group = r.openGroup(where);
  std::map<std::string, double> metrics;
  for (const MetricColumn& m : kMetricColumns) {
    if (r.hasAttr(group.get(), m.name)) metrics[m.name] = r.doubleAttr(group.get(), m.name);
  }
  file.metrics.push_back(std::move(metrics));
  file.relativeErrorByDepth.push_back(r.hasAttr(group.get(), "relative_error_by_depth")
                                          ? r.doubleArrayAttr(group.get(), "relative_error_by_depth")
                                          : std::vector<double>{});
}

}  // namespace

std::string configToJson(const RvqConfig& c) {
  return fieldsToJson(rvqConfigTable(), c);
}

CodebookFile codebookFileFromStudy(const StudyResult& study) {
  CodebookFile file;
  file.config = study.config;
  file.sourceDump = study.dumpPath;
  file.alsoTrainedOn = study.alsoTrainedOn;
  file.model = study.model;
  file.headDim = study.headDim;
  file.numKvHeads = study.numKvHeads;
  file.sets = quantizerSets(study);
  for (const LayerKindResult& job : study.jobs) {
    std::map<std::string, double> metrics;
    for (const MetricColumn& m : kMetricColumns) metrics[m.name] = m.value(job);
    file.metrics.push_back(std::move(metrics));
    std::vector<double> curve;
    for (const ErrorSums& d : job.byDepth) curve.push_back(d.relativeError());
    file.relativeErrorByDepth.push_back(std::move(curve));
  }
  return file;
}

void writeCodebookFile(const std::string& path, const CodebookFile& file) {
  h5::ErrorSilencer silence;
  const std::string temporary = temporaryPathFor(path);
  {
    h5::Writer w(path, temporary);
    const hid_t root = w.root();
    h5::writeAttr(root, "kvq_format", std::string(kCodebookFormat));
    h5::writeAttr(root, "kvq_format_version", static_cast<int64_t>(kCodebookFormatVersion));
    writeConfigAttrs(root, rvqConfigTable(), file.config);
    h5::writeAttr(root, "source_dump", file.sourceDump);
    if (!file.alsoTrainedOn.empty()) h5::writeAttr(root, "also_trained_on", joinLines(file.alsoTrainedOn));
    h5::writeAttr(root, "model", file.model);
    h5::writeAttr(root, "head_dim", static_cast<int64_t>(file.headDim));
    h5::writeAttr(root, "num_kv_heads", static_cast<int64_t>(file.numKvHeads));
    for (size_t s = 0; s < file.sets.size(); ++s) {
      const QuantizerSet& set = file.sets[s];
      h5::Group group = w.createGroups(setPath(set));
      w.writeInt32(group.get(), "channel_order", {static_cast<hsize_t>(set.channelOrder.size())},
                   set.channelOrder.data());
      if (!set.channelWeights.empty()) {
        w.writeFloat32(group.get(), "channel_weights", {static_cast<hsize_t>(set.channelWeights.size())},
                       set.channelWeights.data());
      }
      if (!set.channelMeans.empty()) {
        const hsize_t heads = static_cast<hsize_t>(set.channelMeans.size() / set.channelOrder.size());
        w.writeFloat32(group.get(), "channel_means", {heads, static_cast<hsize_t>(set.channelOrder.size())},
                       set.channelMeans.data());
      }
      const bool perHead = set.codebooks.size() > 1 || file.config.perHead;
      for (size_t q = 0; q < set.codebooks.size(); ++q) {
        const Codebooks& b = set.codebooks[q];
        const std::vector<hsize_t> shape{static_cast<hsize_t>(b.depth), static_cast<hsize_t>(b.size),
                                         static_cast<hsize_t>(b.dim)};
        if (perHead) {
          h5::Group head = w.createGroups(setPath(set) + "/head_" + std::to_string(q));
          w.writeFloat32(head.get(), "codebooks", shape, b.data.data());
        } else {
          w.writeFloat32(group.get(), "codebooks", shape, b.data.data());
        }
      }
      if (s < file.metrics.size()) {
        for (const auto& [name, value] : file.metrics[s]) h5::writeAttr(group.get(), name, value);
      }
      if (s < file.relativeErrorByDepth.size()) {
        h5::writeAttr(group.get(), "relative_error_by_depth", file.relativeErrorByDepth[s]);
      }
    }
    if (file.allocation) io::writeAllocationGroup(w, *file.allocation);
    w.close();
  }
  commitTemporaryFile(temporary, path);
}

CodebookFile readCodebookFile(const std::string& path, const FileIdentity* expected) {
  h5::ErrorSilencer silence;
  h5::Reader r(path, expected);
  CodebookFile file;
  readHeader(r, file);
  for (const std::string& layerName : r.children("/layers", kMaxCount)) {
    const int layer = layerOfGroup(path, layerName);
    for (const std::string& kindText : r.children("/layers/" + layerName, 2)) {
      const std::string where = "/layers/" + layerName + "/" + kindText;
      QuantizerSet set = readQuantizerSet(r, file, layer, where, kindText);
      readGroupMetrics(r, where, file);
      file.sets.push_back(std::move(set));
    }
  }
  if (file.sets.empty()) throwBadInput(path, "/layers", "the file holds no quantizer");
  file.allocation = io::readAllocationGroup(r, file);
  return file;
}

}  // namespace kvq
