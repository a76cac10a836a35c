#include "isolate/protocol.h"

#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "kvq/base/error.h"

namespace kvq::isolate {

bool writeEvent(int fd, const nlohmann::json& event) {
  const std::string line = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

nlohmann::json identityToJson(const FileIdentity& identity) {
  return {{"device", identity.device},
          {"inode", identity.inode},
          {"size", identity.size},
          {"mtime_ns", identity.mtimeNs}};
}

FileIdentity identityFromJson(const nlohmann::json& j) {
  auto field = [&](const char* name) -> const nlohmann::json& {
    if (!j.is_object() || !j.contains(name) || !j.at(name).is_number_integer())
      throwInternal("validator identity event",
                    std::string("field '") + name + "' is missing or not an integer");
    return j.at(name);
  };
  FileIdentity id;
  id.device = field("device").get<uint64_t>();
  id.inode = field("inode").get<uint64_t>();
  id.size = field("size").get<uint64_t>();
  id.mtimeNs = field("mtime_ns").get<int64_t>();
  return id;
}

}  // namespace kvq::isolate
