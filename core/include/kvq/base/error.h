// kvq::Error — the one exception type of the project.
//
// Every failure that reaches a user (bad file, bad option, CUDA error, cancellation)
// is a kvq::Error carrying *what kind* of failure, *which file*, *where* inside it
// (an HDF5 path, a token/channel position, a setting's field name) and *what* is
// wrong. Core names a setting by its field ("group_size", "layers"), never by a CLI
// flag: the CLI presents it as its flag (--group-size), the GUI as its control's
// label. The CLI maps the kind to an exit code; the GUI shows the message in a dialog.
#pragma once

#include <stdexcept>
#include <string>

namespace kvq {

enum class ErrorKind {
  BadInput,   // the user's file or options are wrong (CLI exit 2)
  Internal,   // a bug or an environment fault (CLI exit 1)
  Cancelled,  // the user cancelled long work; earlier results stay valid
  Resource,   // out of (device) memory or another resource; may fall back
};

class Error : public std::runtime_error {
 public:
  // file: the file concerned ("" if none); where: place inside it (HDF5 path,
  // "layer 3 keys token 17 head 2 channel 5", a field name; "" if none);
  // problem: what is wrong, as a sentence fragment without trailing period.
  Error(ErrorKind kind, std::string file, std::string where, std::string problem);

  ErrorKind kind() const noexcept { return m_kind; }
  const std::string& file() const noexcept { return m_file; }
  const std::string& where() const noexcept { return m_where; }
  const std::string& problem() const noexcept { return m_problem; }

 private:
  ErrorKind m_kind;
  std::string m_file;
  std::string m_where;
  std::string m_problem;
};

// Shorthands for the common kinds.
[[noreturn]] void throwBadInput(const std::string& file, const std::string& where,
                                const std::string& problem);
[[noreturn]] void throwInternal(const std::string& where, const std::string& problem);

}  // namespace kvq
