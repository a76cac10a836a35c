#include <filesystem>

#include "commands.h"

namespace kvq::cli {

std::string defaultSample() {
  const std::filesystem::path sample(KVQ_DEFAULT_SAMPLE);
  std::error_code ec;
  return std::filesystem::exists(sample, ec) ? sample.string() : std::string();
}

}  // namespace kvq::cli
