#include "kvq/attention/dump_rope.h"

#include "kvq/base/error.h"

namespace kvq {

DumpRope ropeFromDump(const DumpInfo& info) {
  DumpRope rope;
  rope.layout = parseRopeLayout(info.ropeLayout, "rope_layout");
  if (!info.ropeInvFreq.empty()) {
    rope.invFreq = info.ropeInvFreq;
  } else if (info.ropeTheta) {
    RopeConfig config;
    config.theta = *info.ropeTheta;
    config.dim = info.ropeDim.value_or(info.headDim);
    if (config.dim % 2 != 0)
      throwBadInput(info.path, "/",
                    "head_dim is odd and rope_dim is absent: which channels rotate is unknown");
    rope.invFreq = ropeInverseFrequencies(config);
  } else {
    throwBadInput(
        info.path, "/",
        "keys are pre-RoPE but the dump has neither /rope_inv_freq nor rope_theta, so they cannot be "
        "rotated for attention");
  }
  return rope;
}

}  // namespace kvq
