// Open-time checks of a dump (docs/dump-format.md, "Refusals"): the structure
// (dump_validate.cpp) and the value scan (dump_reader.cpp streams the data).
#pragma once

#include <cstdint>
#include <string>

#include "dump/dump_reader_impl.h"
#include "kvq/base/task.h"

namespace kvq::detail {

// Largest float32 size of one dataset accepted at open (1 TiB): real dumps are
// gigabytes; anything past this is a damaged or hostile header.
constexpr uint64_t kMaxDatasetBytes = uint64_t{1} << 40;

// Opens `path` and fills impl (file, info, layers) or throws Error(BadInput).
void validateDump(const std::string& path, ReaderImpl& impl);
// Streams every dataset once and refuses the first NaN/Inf.
void scanValues(ReaderImpl& impl, const TaskControl* control);

}  // namespace kvq::detail
