#include "kvq/model/decoder_model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>

#include "kvq/base/error.h"
#include "kvq/base/text.h"
#include "kvq/model/gguf_file.h"

namespace kvq {

namespace {

// Typed, checked access to one architecture's metadata keys.
class Metadata {
 public:
  Metadata(const GgufFile& file, std::string arch) : m_file(file), m_arch(std::move(arch)) {}

  std::string key(const std::string& suffix) const { return m_arch + "." + suffix; }

  const GgufValue* find(const std::string& suffix) const { return m_file.header().find(key(suffix)); }

  int integer(const std::string& suffix, int64_t lo, int64_t hi, std::optional<int64_t> fallback = {}) const {
    const GgufValue* v = find(suffix);
    if (v == nullptr) {
      if (fallback) return static_cast<int>(*fallback);
      fail(suffix, "is missing");
    }
    const auto i = v->asInteger();
    if (!i) fail(suffix, "must be an integer (per-layer arrays are not supported)");
    if (*i < lo || *i > hi) {
      fail(suffix,
           "value " + std::to_string(*i) + " is outside " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    return static_cast<int>(*i);
  }

  double number(const std::string& suffix, double fallback, double lo, double hi) const {
    const GgufValue* v = find(suffix);
    if (v == nullptr) return fallback;
    const auto d = v->asNumber();
    if (!d || !(*d >= lo && *d <= hi))
      fail(suffix, "must be a number in " + std::to_string(lo) + ".." + std::to_string(hi));
    return *d;
  }

  std::string text(const std::string& suffix, const std::string& fallback) const {
    const GgufValue* v = find(suffix);
    if (v == nullptr) return fallback;
    const std::string* s = v->asString();
    if (s == nullptr) fail(suffix, "must be a string");
    return *s;
  }

  [[noreturn]] void fail(const std::string& suffix, const std::string& problem) const {
    throwBadInput(m_file.path(), "metadata '" + key(suffix) + "'", problem);
  }

 private:
  const GgufFile& m_file;
  std::string m_arch;
};

std::string architectureOf(const GgufFile& file) {
  const GgufValue* v = file.header().find("general.architecture");
  if (v == nullptr || v->asString() == nullptr) {
    throwBadInput(file.path(), "metadata 'general.architecture'", "is missing or not a string");
  }
  std::string arch = *v->asString();
  if (arch != "llama" && arch != "qwen2") {
    throwBadInput(file.path(), "metadata 'general.architecture'",
                  "architecture " + quoteForMessage(arch) + " is not supported (only 'llama' and 'qwen2')");
  }
  return arch;
}

void readRope(const Metadata& meta, const GgufFile& file, ModelConfig& c) {
  c.rope.theta = meta.number("rope.freq_base", 10000.0, 1.0, 1e12);
  c.rope.dim = meta.integer("rope.dimension_count", 2, c.headDim, c.headDim);
  if (c.rope.dim % 2 != 0) meta.fail("rope.dimension_count", "must be even");
  const std::string type = meta.text("rope.scaling.type", "none");
  if (type == "linear") {
    c.rope.scaling = "linear";
    c.rope.factor = meta.number("rope.scaling.factor", 1.0, 1e-6, 1e6);
  } else if (type != "none") {
    meta.fail("rope.scaling.type",
              "rope scaling " + quoteForMessage(type) + " is not supported (only none and linear)");
  }
  if (meta.find("rope.scale_linear") != nullptr) {  // the older key of linear scaling
    c.rope.scaling = "linear";
    c.rope.factor = meta.number("rope.scale_linear", 1.0, 1e-6, 1e6);
  }
  if (const GgufTensorInfo* t = file.header().findTensor("rope_freqs.weight")) {  // Llama 3.1 factors
    if (t->dims.size() != 1 || t->dims[0] != static_cast<uint64_t>(c.rope.dim / 2)) {
      throwBadInput(file.path(), "tensor 'rope_freqs.weight'", "must hold rope.dimension_count / 2 values");
    }
    c.rope.freqFactors.resize(static_cast<size_t>(c.rope.dim / 2));
    file.readFloat32(*t, c.rope.freqFactors.data());
    for (float f : c.rope.freqFactors) {
      if (!(f > 0)) throwBadInput(file.path(), "tensor 'rope_freqs.weight'", "factors must be positive");
    }
  }
}

std::string shapeText(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// The tensor, checked against the shape the metadata implies (GGUF order: dims[0] fastest).
const GgufTensorInfo& expectTensor(const GgufFile& file, const std::string& name,
                                   const std::vector<uint64_t>& dims) {
  const GgufTensorInfo* t = file.header().findTensor(name);
  if (t == nullptr) throwBadInput(file.path(), "tensor '" + name + "'", "is missing");
  const GgmlTypeInfo* info = ggmlTypeInfo(t->type);
  if (info == nullptr || !info->dequantizable) {
    throwBadInput(file.path(), "tensor '" + name + "'",
                  "tensor type " + ggmlTypeName(t->type) +
                      " is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K are)");
  }
  if (t->dims != dims) {
    throwBadInput(file.path(), "tensor '" + name + "'",
                  "has shape " + shapeText(t->dims) + " but the metadata implies " + shapeText(dims));
  }
  return *t;
}

bool hasTensor(const GgufFile& file, const std::string& name) {
  return file.header().findTensor(name) != nullptr;
}

}  // namespace

ModelConfig readModelConfig(const GgufFile& file) {
  ModelConfig c;
  c.architecture = architectureOf(file);
  const Metadata meta(file, c.architecture);
  const GgufValue* name = file.header().find("general.name");
  c.name = name != nullptr && name->asString() != nullptr
               ? *name->asString()
               : std::filesystem::path(file.path()).filename().string();
  // The name goes into reports, JSON (which refuses invalid UTF-8) and the GUI.
  if (const std::string problem = utf8Problem(c.name); !problem.empty()) {
    throwBadInput(file.path(), "metadata 'general.name'",
                  "is not valid UTF-8 (" + problem + "): " + quoteForMessage(c.name));
  }
  c.numLayers = meta.integer("block_count", 1, 4096);
  c.hidden = meta.integer("embedding_length", 1, 1 << 16);
  c.numQHeads = meta.integer("attention.head_count", 1, 1024);
  c.numKvHeads = meta.integer("attention.head_count_kv", 1, 1024, c.numQHeads);
  if (c.numQHeads % c.numKvHeads != 0) {
    meta.fail("attention.head_count_kv", "must divide attention.head_count " + std::to_string(c.numQHeads));
  }
  if (meta.find("attention.key_length") == nullptr && c.hidden % c.numQHeads != 0) {
    meta.fail("attention.head_count", "must divide embedding_length " + std::to_string(c.hidden));
  }
  c.headDim = meta.integer("attention.key_length", 2, 1024, c.hidden / c.numQHeads);
  if (meta.integer("attention.value_length", 2, 1024, c.headDim) != c.headDim) {
    meta.fail("attention.value_length", "must equal attention.key_length");
  }
  if (c.headDim % 2 != 0) meta.fail("attention.key_length", "head_dim must be even");
  c.ffn = meta.integer("feed_forward_length", 1, 1 << 20);
  c.rmsEps = meta.number("attention.layer_norm_rms_epsilon", 1e-5, 0.0, 1.0);
  const GgufTensorInfo* embed = file.header().findTensor("token_embd.weight");
  if (embed == nullptr || embed->dims.size() != 2) {
    throwBadInput(file.path(), "tensor 'token_embd.weight'", "is missing or not a matrix");
  }
  c.vocab = meta.integer("vocab_size", 1, 1 << 22,
                         static_cast<int64_t>(std::min<uint64_t>(embed->dims[1], 1 << 23)));
  readRope(meta, file, c);
  c.tiedOutput = !hasTensor(file, "output.weight");
  c.qkvBias = hasTensor(file, "blk.0.attn_q.bias");
  c.outputBias = hasTensor(file, "blk.0.attn_output.bias");
  if (c.architecture == "qwen2" && !c.qkvBias) {
    throwBadInput(file.path(), "tensor 'blk.0.attn_q.bias'", "is missing (qwen2 models have q/k/v biases)");
  }
  return c;
}

uint64_t modelWeightBytes(const ModelConfig& c) {
  const auto h = static_cast<uint64_t>(c.hidden);
  const auto v = static_cast<uint64_t>(c.vocab);
  const auto qkv = static_cast<uint64_t>(c.qkvRows());
  const auto qd = static_cast<uint64_t>(c.numQHeads) * static_cast<uint64_t>(c.headDim);
  const auto f = static_cast<uint64_t>(c.ffn);
  const uint64_t perLayer =
      2 * h + qkv * h + (c.qkvBias ? qkv : 0) + h * qd + (c.outputBias ? h : 0) + 3 * f * h;
  const uint64_t total = v * h * (c.tiedOutput ? 1 : 2) + h + static_cast<uint64_t>(c.numLayers) * perLayer;
  return total * sizeof(float);
}

void unpermuteRopeRows(float* rows, int heads, int headDim, int64_t cols) {
  const int half = headDim / 2;
  std::vector<float> head(static_cast<size_t>(headDim * cols));
  for (int h = 0; h < heads; ++h) {
    float* base = rows + static_cast<int64_t>(h) * headDim * cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    for (int i = 0; i < half; ++i) {
      for (int s = 0; s < 2; ++s) {  // stored row 2i + s -> HF row s*half + i
        std::memcpy(base + static_cast<int64_t>(s * half + i) * cols,
                    head.data() + static_cast<int64_t>(2 * i + s) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
}

namespace {

class Loader {
 public:
  Loader(const GgufFile& file, const ModelConfig& c, const TaskControl* control)
      : m_file(file), m_c(c), m_control(control) {}

  // Reads `name` (GGUF dims) into dst, which must hold the product of dims floats.
  void read(const std::string& name, const std::vector<uint64_t>& dims, float* dst) {
    checkCancel(m_control);
    m_file.readFloat32(expectTensor(m_file, name, dims), dst);
  }

  std::vector<float> vec(const std::string& name, const std::vector<uint64_t>& dims) {
    uint64_t n = 1;
    for (auto d : dims) n *= d;
    std::vector<float> out(static_cast<size_t>(n));
    read(name, dims, out.data());
    return out;
  }

  void layer(int l, LayerWeights& w) {
    const auto h = static_cast<uint64_t>(m_c.hidden);
    const auto d = static_cast<uint64_t>(m_c.headDim);
    const auto q = static_cast<uint64_t>(m_c.numQHeads) * d, kv = static_cast<uint64_t>(m_c.numKvHeads) * d;
    const auto f = static_cast<uint64_t>(m_c.ffn);
    const std::string p = "blk." + std::to_string(l) + ".";
    w.attnNorm = vec(p + "attn_norm.weight", {h});
    w.wqkv.resize(static_cast<size_t>((q + 2 * kv) * h));
    read(p + "attn_q.weight", {h, q}, w.wqkv.data());
    read(p + "attn_k.weight", {h, kv}, w.wqkv.data() + q * h);
    read(p + "attn_v.weight", {h, kv}, w.wqkv.data() + (q + kv) * h);
    const bool permuted = m_c.architecture == "llama";
    if (permuted) {
      unpermuteRopeRows(w.wqkv.data(), m_c.numQHeads, m_c.headDim, m_c.hidden);
      unpermuteRopeRows(w.wqkv.data() + q * h, m_c.numKvHeads, m_c.headDim, m_c.hidden);
    }
    if (m_c.qkvBias) {
      w.bqkv.resize(static_cast<size_t>(q + 2 * kv));
      read(p + "attn_q.bias", {q}, w.bqkv.data());
      read(p + "attn_k.bias", {kv}, w.bqkv.data() + q);
      read(p + "attn_v.bias", {kv}, w.bqkv.data() + q + kv);
      if (permuted) {
        unpermuteRopeRows(w.bqkv.data(), m_c.numQHeads, m_c.headDim, 1);
        unpermuteRopeRows(w.bqkv.data() + q, m_c.numKvHeads, m_c.headDim, 1);
      }
    }
    w.wo = vec(p + "attn_output.weight", {q, h});
    if (m_c.outputBias) w.bo = vec(p + "attn_output.bias", {h});
    w.ffnNorm = vec(p + "ffn_norm.weight", {h});
    w.wGateUp.resize(static_cast<size_t>(2 * f * h));
    read(p + "ffn_gate.weight", {h, f}, w.wGateUp.data());
    read(p + "ffn_up.weight", {h, f}, w.wGateUp.data() + f * h);
    w.wDown = vec(p + "ffn_down.weight", {f, h});
  }

 private:
  const GgufFile& m_file;
  const ModelConfig& m_c;
  const TaskControl* m_control;
};

}  // namespace

std::unique_ptr<DecoderModel> loadDecoderModel(const std::string& path, const ModelLoadOptions& options) {
  const auto file = GgufFile::open(path);
  auto model = std::make_unique<DecoderModel>();
  model->path = path;
  model->config = readModelConfig(*file);
  const ModelConfig& c = model->config;
  const uint64_t bytes = modelWeightBytes(c);
  if (bytes > options.memoryBudget) {
    throwBadInput(path, "tensor 'token_embd.weight' and " + std::to_string(c.numLayers) + " blocks",
                  "the model needs " + std::to_string(bytes >> 20) +
                      " MiB of float32 weights, more than the memory "
                      "budget of " +
                      std::to_string(options.memoryBudget >> 20) + " MiB");
  }
  Loader loader(*file, c, options.control);
  const auto h = static_cast<uint64_t>(c.hidden), v = static_cast<uint64_t>(c.vocab);
  reportProgress(options.control, 0.0, "loading model");
  model->embedding = loader.vec("token_embd.weight", {h, v});
  model->layers.resize(static_cast<size_t>(c.numLayers));
  for (int l = 0; l < c.numLayers; ++l) {
    loader.layer(l, model->layers[static_cast<size_t>(l)]);
    reportProgress(options.control, (l + 1.0) / (c.numLayers + 1.0), "loading model");
  }
  model->outputNorm = loader.vec("output_norm.weight", {h});
  if (!c.tiedOutput) model->output = loader.vec("output.weight", {h, v});
  reportProgress(options.control, 1.0, "loading model");
  return model;
}

}  // namespace kvq
