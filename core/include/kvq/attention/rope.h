// Rotary position embedding (RoPE) as a dump describes it (docs/dump-format.md,
// "Attention fields"): which channels pair up (layout) and each pair's inverse
// frequency. Shared by the attention metrics and anything else in core that needs
// to rotate pre-RoPE keys or queries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

enum class RopeLayout {
  Half,        // pair i = channels (i, i + rope_dim/2): Hugging Face / GPT-NeoX "rotate_half"
  Interleaved  // pair i = channels (2i, 2i + 1): GPT-J, llama.cpp's own row order
};

const char* ropeLayoutName(RopeLayout layout);  // "half", "interleaved"
// Throws Error(BadInput) naming `where` for anything but "half" / "interleaved".
RopeLayout parseRopeLayout(const std::string& text, const std::string& where);

struct Rope {
  RopeLayout layout = RopeLayout::Half;
  std::vector<double> invFreq;  // [rope_dim/2] radians per position of each pair
  int ropeDim() const { return static_cast<int>(invFreq.size()) * 2; }
};

// theta^(-2i/ropeDim) for i < ropeDim/2 (unscaled RoPE). ropeDim even, > 0.
std::vector<double> ropeInverseFrequencies(double theta, int ropeDim);

// The rotation a dump describes: /rope_inv_freq when stored, otherwise from
// rope_theta and rope_dim (head_dim when absent). Throws Error(BadInput) naming
// the dump when it has neither /rope_inv_freq nor rope_theta.
Rope ropeFromDump(const DumpInfo& info);

// Rotates the first rope_dim channels of every vector in place; the others pass.
//   x:         [n, heads, dim] row-major float32
//   positions: [n] rotary position of each row (position within its sequence)
// Angles pos * invFreq[i] and their cosine and sine are computed in double and
// rounded to float; the rotation itself is float arithmetic:
//   (a, b) -> (a cos - b sin, b cos + a sin).
void applyRope(float* x, int64_t n, int heads, int dim, const int64_t* positions, const Rope& rope);

}  // namespace kvq
