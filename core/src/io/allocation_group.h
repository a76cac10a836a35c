// Internal: the /allocation group of a codebook file (docs/codebook-format.md): the bit
// allocation kvq allocate chose for its quantizers, stored with them.
#pragma once

#include <optional>

#include "h5/h5_file.h"
#include "kvq/io/codebook_file.h"

namespace kvq::io {

void writeAllocationGroup(h5::Writer& w, const CacheAllocation& allocation);

// nullopt when the file has no /allocation. Throws Error(BadInput) naming the file and the
// dataset: arrays of different lengths, a kind other than 0/1, a depth outside 1..K, a layer and
// kind the file has no quantizer for.
std::optional<CacheAllocation> readAllocationGroup(const h5::Reader& r, const CodebookFile& file);

}  // namespace kvq::io
