// Open-time checks of the optional fields that attention metrics read
// (docs/dump-format.md, "Attention fields"): the root attributes rope_layout and
// attention_scale, the datasets /rope_inv_freq and /query_positions. Kept apart
// from dump_validate.cpp so that the attention additions stay in one place.
#pragma once

#include <string>

#include "h5/hdf5_handle.h"
#include "kvq/dump/dump.h"

namespace kvq::detail {

// Reads rope_layout, attention_scale and /rope_inv_freq into info (needs
// headDim and ropeDim already read). Throws Error(BadInput) naming `path`.
void readAttentionAttributes(hid_t root, const std::string& path, DumpInfo& info);

// Reads and checks /query_positions [queryTokens] against info.tokens (needs the
// layers read). Throws Error(BadInput) naming `path`.
void readQueryPositions(hid_t root, const std::string& path, DumpInfo& info);

}  // namespace kvq::detail
