// Bytes of one study job's result, to send it from the rank that computed it to the
// rank that writes the files. Every field of LayerKindResult travels, doubles
// bit for bit; the ranks of one run share the byte order and type sizes (one build,
// one architecture), as MPI jobs of one binary do.
#pragma once

#include <string>

#include "kvq/study/quantize_study.h"

namespace kvq {

std::string encodeJobResult(const LayerKindResult& job);
// Throws Error(Internal) on bytes that encodeJobResult did not write.
LayerKindResult decodeJobResult(const std::string& bytes);

}  // namespace kvq
