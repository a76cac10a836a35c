// Which rotary position embedding a dump describes (docs/dump-format.md, "Attention
// fields"): the channel layout and the inverse frequencies, for kvq::applyRope
// (kvq/model/rope.h, the one rotation of core). The rotary position of a token is its
// offset within its sequence.
#pragma once

#include <vector>

#include "kvq/dump/dump.h"
#include "kvq/model/rope.h"

namespace kvq {

struct DumpRope {
  RopeLayout layout = RopeLayout::Half;
  std::vector<double> invFreq;  // [rope_dim/2] radians per position of each pair
  int ropeDim() const { return static_cast<int>(invFreq.size()) * 2; }
};

// /rope_inv_freq when stored, otherwise rope_theta^(-2i/rope_dim) (rope_dim: head_dim
// when absent), and rope_layout. Throws Error(BadInput) naming the dump when it has
// neither /rope_inv_freq nor rope_theta.
DumpRope ropeFromDump(const DumpInfo& info);

}  // namespace kvq
