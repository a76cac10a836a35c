// The validator's protocol: one JSON object per line, child to parent.
//
//   {"event":"hello","protocol":1,"version":"0.1.0"}      first, always
//   {"event":"step","step":"reading root attribute 'model'"}  before each risky call
//   {"event":"identity","device":..,"inode":..,"size":..,"mtime_ns":..}
//   {"event":"header","info":{...dumpHeaderToJson...}}
//   {"event":"progress","fraction":0.25}                    of this process's share
//   {"event":"layer","stats":{...layerStatsToJson...}}
//   {"event":"codebooks","sets":N}
//   {"event":"error","kind":"bad_input"|"internal"|"memory","file":..,"where":..,"problem":..}
//   {"event":"done"}                                        last, on success
//
// Anything else — a crash, a hang, a limit hit, a line that does not parse — is a
// failure the parent explains from the last step (open_file.cpp).
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "kvq/base/file_identity.h"

namespace kvq::isolate {

inline constexpr int kProtocolVersion = 1;

// Writes event as one line to fd, completely (EINTR and short writes retried);
// invalid UTF-8 in strings is replaced, never fatal. Returns false when the parent
// is gone.
bool writeEvent(int fd, const nlohmann::json& event);

nlohmann::json identityToJson(const FileIdentity& identity);
// Strict; throws Error(Internal) when a field is missing or of the wrong type.
FileIdentity identityFromJson(const nlohmann::json& j);

}  // namespace kvq::isolate
