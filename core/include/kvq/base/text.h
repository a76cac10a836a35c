// Text from files other people made: UTF-8 validation and quoting for error messages
// (the HDF5 readers' string attributes, GGUF metadata).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kvq {

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code points past
// U+10FFFF included), or std::string_view::npos when `text` is valid.
size_t firstInvalidUtf8(std::string_view text);
// Why `text` is not valid UTF-8 ("byte 0xff at offset 3"), or "" when it is.
std::string utf8Problem(std::string_view text);
// `text` in double quotes for a message: at most ~100 characters, bytes outside printable
// ASCII as \xNN, a cut marked with "…" and the full size.
std::string quoteForMessage(std::string_view text);

}  // namespace kvq
