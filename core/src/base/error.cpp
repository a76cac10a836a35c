#include "kvq/base/error.h"

namespace kvq {
namespace {

std::string composeMessage(const std::string& file, const std::string& where, const std::string& problem) {
  std::string message;
  if (!file.empty()) message += file + ": ";
  if (!where.empty()) message += where + ": ";
  message += problem;
  return message;
}

}  // namespace

Error::Error(ErrorKind kind, std::string file, std::string where, std::string problem)
    : std::runtime_error(composeMessage(file, where, problem)),
      m_kind(kind),
      m_file(std::move(file)),
      m_where(std::move(where)),
      m_problem(std::move(problem)) {}

void throwBadInput(const std::string& file, const std::string& where, const std::string& problem) {
  throw Error(ErrorKind::BadInput, file, where, problem);
}

void throwInternal(const std::string& where, const std::string& problem) {
  throw Error(ErrorKind::Internal, "", where, problem);
}

}  // namespace kvq
