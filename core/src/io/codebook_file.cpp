// Codebook file v1 writer and reader (docs/codebook-format.md).
#include "kvq/io/codebook_file.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "h5/h5_file.h"
#include "h5/hdf5_handle.h"
#include "kvq/base/error.h"
#include "kvq/base/file_util.h"
#include "kvq/study/quantize_study.h"

namespace kvq {
namespace {

std::string setPath(const QuantizerSet& set) {
  return "/layers/" + std::to_string(set.layer) + "/" + kindName(set.kind);
}

Kind parseKind(const std::string& file, const std::string& where, const std::string& name) {
  if (name == "keys") return Kind::Keys;
  if (name == "values") return Kind::Values;
  throwBadInput(file, where, "unknown kind '" + name + "' (keys, values)");
}

void writeConfigAttrs(hid_t obj, const RvqConfig& c) {
  using namespace h5;
  writeAttr(obj, "preset", c.preset);
  writeAttr(obj, "codebook_size", static_cast<int64_t>(c.codebookSize));
  writeAttr(obj, "depth", static_cast<int64_t>(c.depth));
  writeAttr(obj, "group_size", static_cast<int64_t>(c.groupSize));
  writeAttr(obj, "key_grouping", std::string(groupingName(c.keyGrouping)));
  writeAttr(obj, "value_grouping", std::string(groupingName(c.valueGrouping)));
  writeAttr(obj, "per_head", static_cast<int64_t>(c.perHead ? 1 : 0));
  writeAttr(obj, "train_sample", c.trainSample);
  writeAttr(obj, "init", std::string(kmeansInitName(c.init)));
  writeAttr(obj, "kmeans_iterations", static_cast<int64_t>(c.kmeansIterations));
  writeAttr(obj, "ema_decay", c.emaDecay);
  writeAttr(obj, "ema_epsilon", c.emaEpsilon);
  writeAttr(obj, "ema_steps", static_cast<int64_t>(c.emaSteps));
  writeAttr(obj, "batch_size", c.batchSize);
  writeAttr(obj, "dead_threshold", c.deadThreshold);
  writeAttr(obj, "lloyd_iterations", static_cast<int64_t>(c.lloydIterations));
  writeAttr(obj, "beam_width", static_cast<int64_t>(c.beamWidth));
  writeAttr(obj, "held_out_fraction", c.heldOutFraction);
  writeAttr(obj, "seed", static_cast<int64_t>(c.seed));
}

KMeansInit parseInit(const std::string& file, const std::string& name) {
  if (name == kmeansInitName(KMeansInit::RandomPoints)) return KMeansInit::RandomPoints;
  if (name == kmeansInitName(KMeansInit::PlusPlus)) return KMeansInit::PlusPlus;
  if (name == kmeansInitName(KMeansInit::Progressive)) return KMeansInit::Progressive;
  throwBadInput(file, "/ init", "unknown k-means initialisation '" + name + "'");
}

// An int64 attribute narrowed to int only after checking it fits: a hostile
// 2^33 must not wrap to 0 (validateConfig then checks the meaning).
int intAttrAsInt(const h5::Reader& r, hid_t obj, const char* name) {
  const int64_t value = r.intAttr(obj, name);
  if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
    throwBadInput(r.path(), std::string("/ ") + name,
                  "value " + std::to_string(value) + " is out of range for a 32-bit integer");
  }
  return static_cast<int>(value);
}

RvqConfig readConfigAttrs(const h5::Reader& r, hid_t obj) {
  RvqConfig c;
  c.preset = r.stringAttr(obj, "preset");
  c.codebookSize = intAttrAsInt(r, obj, "codebook_size");
  c.depth = intAttrAsInt(r, obj, "depth");
  c.groupSize = intAttrAsInt(r, obj, "group_size");
  try {
    c.keyGrouping = parseGrouping(r.stringAttr(obj, "key_grouping"));
    c.valueGrouping = parseGrouping(r.stringAttr(obj, "value_grouping"));
  } catch (const Error& e) {
    throwBadInput(r.path(), "/ key_grouping, value_grouping", e.problem());
  }
  c.perHead = r.intAttr(obj, "per_head") != 0;
  c.trainSample = r.intAttr(obj, "train_sample");
  c.init = parseInit(r.path(), r.stringAttr(obj, "init"));
  c.kmeansIterations = intAttrAsInt(r, obj, "kmeans_iterations");
  c.emaDecay = r.doubleAttr(obj, "ema_decay");
  c.emaEpsilon = r.doubleAttr(obj, "ema_epsilon");
  c.emaSteps = intAttrAsInt(r, obj, "ema_steps");
  c.batchSize = r.intAttr(obj, "batch_size");
  c.deadThreshold = r.doubleAttr(obj, "dead_threshold");
  c.lloydIterations = intAttrAsInt(r, obj, "lloyd_iterations");
  c.beamWidth = intAttrAsInt(r, obj, "beam_width");
  c.heldOutFraction = r.doubleAttr(obj, "held_out_fraction");
  c.seed = static_cast<uint64_t>(r.intAttr(obj, "seed"));
  return c;
}

// The attribute of the codebook file that a validateConfig option name stands for.
std::string attrForOption(const std::string& option) {
  if (option == "--beam") return "beam_width";
  if (option == "--held-out") return "held_out_fraction";
  std::string name = option.rfind("--", 0) == 0 ? option.substr(2) : option;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// validateConfig speaks of CLI options; in a file the culprit is an attribute.
void validateFileConfig(const std::string& path, const RvqConfig& config, int headDim) {
  try {
    validateConfig(config, headDim);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::BadInput) throw;
    throwBadInput(path, "/ " + attrForOption(e.where()), e.problem());
  }
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

}  // namespace

std::string configToJson(const RvqConfig& c) {
  nlohmann::json j;
  j["preset"] = c.preset;
  j["codebook_size"] = c.codebookSize;
  j["depth"] = c.depth;
  j["group_size"] = c.groupSize;
  j["key_grouping"] = groupingName(c.keyGrouping);
  j["value_grouping"] = groupingName(c.valueGrouping);
  j["per_head"] = c.perHead;
  j["train_sample"] = c.trainSample;
  j["init"] = kmeansInitName(c.init);
  j["kmeans_iterations"] = c.kmeansIterations;
  j["ema_decay"] = c.emaDecay;
  j["ema_epsilon"] = c.emaEpsilon;
  j["ema_steps"] = c.emaSteps;
  j["batch_size"] = c.batchSize;
  j["dead_threshold"] = c.deadThreshold;
  j["lloyd_iterations"] = c.lloydIterations;
  j["beam_width"] = c.beamWidth;
  j["held_out_fraction"] = c.heldOutFraction;
  j["seed"] = c.seed;
  return j.dump();
}

CodebookFile codebookFileFromStudy(const StudyResult& study) {
  CodebookFile file;
  file.config = study.config;
  file.sourceDump = study.dumpPath;
  file.model = study.model;
  file.headDim = study.headDim;
  file.numKvHeads = study.numKvHeads;
  file.sets = quantizerSets(study);
  for (const LayerKindResult& job : study.jobs) {
    const ErrorSums& e = job.error();
    file.metrics.push_back({{"relative_error", e.relativeError()},
                            {"snr_db", e.snrDb()},
                            {"mean_cosine", e.meanCosine()},
                            {"bits_per_channel", job.bitsPerChannel},
                            {"compression_ratio", job.compressionRatio},
                            {"amortised_bits_per_channel", job.amortisedBitsPerChannel},
                            {"held_out_vectors", static_cast<double>(job.evalVectors)}});
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
    writeConfigAttrs(root, file.config);
    h5::writeAttr(root, "source_dump", file.sourceDump);
    h5::writeAttr(root, "model", file.model);
    h5::writeAttr(root, "head_dim", static_cast<int64_t>(file.headDim));
    h5::writeAttr(root, "num_kv_heads", static_cast<int64_t>(file.numKvHeads));
    for (size_t s = 0; s < file.sets.size(); ++s) {
      const QuantizerSet& set = file.sets[s];
      h5::Group group = w.createGroups(setPath(set));
      w.writeInt32(group.get(), "channel_order", {static_cast<hsize_t>(set.channelOrder.size())},
                   set.channelOrder.data());
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
    w.close();
  }
  commitTemporaryFile(temporary, path);
}

CodebookFile readCodebookFile(const std::string& path) {
  h5::ErrorSilencer silence;
  h5::Reader r(path);
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
  CodebookFile file;
  file.config = readConfigAttrs(r, root);
  file.sourceDump = r.stringAttr(root, "source_dump");
  file.model = r.stringAttr(root, "model");
  const int64_t headDim = r.intAttr(root, "head_dim");
  const int64_t numKvHeads = r.intAttr(root, "num_kv_heads");
  constexpr int64_t kMaxCount = 1 << 20;  // as for dumps: head_dim, heads
  if (headDim < 1 || headDim > kMaxCount || numKvHeads < 1 || numKvHeads > kMaxCount) {
    throwBadInput(path, "/ head_dim, num_kv_heads", "must be in [1, " + std::to_string(kMaxCount) + "]");
  }
  file.headDim = static_cast<int>(headDim);
  file.numKvHeads = static_cast<int>(numKvHeads);
  const RvqConfig& c = file.config;
  validateFileConfig(path, c, file.headDim);
  // Shapes are checked against these before reading; the size cap keeps a hostile
  // but consistent file (huge C, K, g) from exhausting memory.
  constexpr uint64_t kMaxCodebookBytes = uint64_t{1} << 32;
  const uint64_t bookBytes = static_cast<uint64_t>(c.depth) * static_cast<uint64_t>(c.codebookSize) *
                             static_cast<uint64_t>(c.groupSize) * sizeof(float);
  if (bookBytes > kMaxCodebookBytes) {
    throwBadInput(path, "/ codebook_size, depth, group_size",
                  "codebooks of " + std::to_string(bookBytes) + " bytes each exceed the limit of " +
                      std::to_string(kMaxCodebookBytes) + " bytes");
  }
  const std::vector<hsize_t> bookShape{static_cast<hsize_t>(c.depth), static_cast<hsize_t>(c.codebookSize),
                                       static_cast<hsize_t>(c.groupSize)};
  for (const std::string& layerName : r.children("/layers", kMaxCount)) {
    int layer = -1;
    if (!h5::parseDecimalIndex(layerName, layer)) {
      throwBadInput(path, "/layers/" + layerName,
                    "layer group name is not a decimal layer index (digits without sign or leading zeros)");
    }
    for (const std::string& kindText : r.children("/layers/" + layerName, 2)) {
      const std::string where = "/layers/" + layerName + "/" + kindText;
      QuantizerSet set;
      set.layer = layer;
      set.kind = parseKind(path, where, kindText);
      set.channelOrder =
          r.readInt32(where + "/channel_order", {static_cast<hsize_t>(file.headDim)}, "positions");
      std::vector<int> seen(static_cast<size_t>(file.headDim), 0);
      for (int ch : set.channelOrder) {
        if (ch < 0 || ch >= file.headDim || seen[ch]++ > 0) {
          throwBadInput(path, where + "/channel_order", "not a permutation of 0..head_dim-1");
        }
      }
      const int quantizers = c.perHead ? file.numKvHeads : 1;
      checkHeadGroups(r, where, c.perHead, quantizers);
      for (int q = 0; q < quantizers; ++q) {
        const std::string dataset =
            c.perHead ? where + "/head_" + std::to_string(q) + "/codebooks" : where + "/codebooks";
        Codebooks books;  // not sized here: readFloat32 checks the shape before allocating
        books.depth = c.depth;
        books.size = c.codebookSize;
        books.dim = c.groupSize;
        books.data = r.readFloat32(dataset, bookShape, "stages");
        for (size_t i = 0; i < books.data.size(); ++i) {
          if (!std::isfinite(books.data[i])) {
            const size_t perStage = static_cast<size_t>(c.codebookSize) * static_cast<size_t>(c.groupSize);
            const size_t entry = (i % perStage) / static_cast<size_t>(c.groupSize);
            throwBadInput(path,
                          dataset + " stage " + std::to_string(i / perStage) + " entry " +
                              std::to_string(entry) + " channel " +
                              std::to_string(i % static_cast<size_t>(c.groupSize)),
                          "codebook entry is not finite (NaN or Inf)");
          }
        }
        set.codebooks.push_back(std::move(books));
      }
      const h5::Group group = r.openGroup(where);
      std::map<std::string, double> metrics;
      for (const char* name : {"relative_error", "snr_db", "mean_cosine", "bits_per_channel",
                               "compression_ratio", "amortised_bits_per_channel", "held_out_vectors"}) {
        if (r.hasAttr(group.get(), name)) metrics[name] = r.doubleAttr(group.get(), name);
      }
      file.metrics.push_back(std::move(metrics));
      file.relativeErrorByDepth.push_back(r.hasAttr(group.get(), "relative_error_by_depth")
                                              ? r.doubleArrayAttr(group.get(), "relative_error_by_depth")
                                              : std::vector<double>{});
      file.sets.push_back(std::move(set));
    }
  }
  if (file.sets.empty()) throwBadInput(path, "/layers", "the file holds no quantizer");
  return file;
}

}  // namespace kvq
