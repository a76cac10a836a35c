#include "kvq/isolate/validator_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace kvq {

std::vector<std::string> validatorCandidates() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("KVQ_VALIDATOR"); env != nullptr && *env != '\0')
    candidates.emplace_back(env);
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back((self.parent_path() / "kvq").string());
#ifdef KVQ_BUILD_VALIDATOR
  candidates.emplace_back(KVQ_BUILD_VALIDATOR);
#endif
#ifdef KVQ_INSTALLED_VALIDATOR
  candidates.emplace_back(KVQ_INSTALLED_VALIDATOR);
#endif
  return candidates;
}

std::string locateValidator() {
  // An explicit choice is final: a typo must not silently fall back to another kvq.
  if (const char* env = std::getenv("KVQ_VALIDATOR"); env != nullptr && *env != '\0') return env;
  for (const std::string& path : validatorCandidates()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0)
      return path;
  }
  return {};
}

}  // namespace kvq
