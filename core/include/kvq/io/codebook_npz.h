// The codebook export for NumPy users: an .npz archive (np.load reads it).
#pragma once

#include <string>

#include "kvq/io/codebook_file.h"

namespace kvq {

// npz export (a zip of .npy arrays, stored): for every set
//   L<layer>_<kind>_codebooks      [K, C, g] float32 (shared quantizer) or
//   L<layer>_<kind>_head<h>_codebooks  per head
//   L<layer>_<kind>_channel_order  [D] int32
// and `config`, a 0-d unicode array holding the JSON of configToJson plus
// source_dump, model, head_dim, num_kv_heads. Written atomically.
void writeCodebookNpz(const std::string& path, const CodebookFile& file);

}  // namespace kvq
