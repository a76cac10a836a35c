// Atomic writes of user-facing files: content goes to a temporary file in the
// same directory, which is renamed over the target only once it is complete, so a
// reader never sees a half-written report, codebook file or export.
#pragma once

#include <string>

namespace kvq {

// Writes `content` to `path` atomically. Throws Error(BadInput) naming the file
// when the directory is not writable or the write fails.
void atomicWriteFile(const std::string& path, const std::string& content);

// "<path>.tmp-<pid>-<n>": the temporary name used before the rename (same
// directory); n counts calls in this process, so every call gives a new name.
std::string temporaryPathFor(const std::string& path);

// fsyncs the finished, closed temporary file (by path), renames it over `path`
// and syncs the directory (best effort); removes it and throws on failure.
void commitTemporaryFile(const std::string& temporary, const std::string& path);

// Removes `temporary` if it exists (no error when absent); for cleanup paths.
void discardTemporaryFile(const std::string& temporary) noexcept;

}  // namespace kvq
