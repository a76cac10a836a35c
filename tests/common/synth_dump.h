// A synthetic dump of a chosen shape for the tests (core and GUI), through kvq::writeSynthDump.
#pragma once

#include <cstdint>
#include <string>

#include "kvq/dump/synth.h"

namespace kvq::test {

// Writes a synthetic dump of layers x kvHeads x headDim over tokens (generator seed) to path,
// with SynthOptions' defaults for the rest (float16 storage, no queries); returns path.
inline std::string writeSynthDumpOf(const std::string& path, int layers, int kvHeads, int headDim,
                                    int64_t tokens, uint64_t seed = SynthOptions{}.seed) {
  SynthOptions o;
  o.layers = layers;
  o.kvHeads = kvHeads;
  o.headDim = headDim;
  o.tokens = tokens;
  o.seed = seed;
  writeSynthDump(path, o);
  return path;
}

}  // namespace kvq::test
