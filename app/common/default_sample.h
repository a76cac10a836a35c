// The bundled real sample dump that kvq and kvq-studio open when given no file.
// Shared by both executables (kvq_app_common), so they look in the same places.
#pragma once

#include <string>

namespace kvq::app {

// The source tree's sample (a build run in place) or, for an installed binary, the
// copy under <prefix>/share/kvq-studio/samples next to <prefix>/bin; "" when this
// build has neither on disk.
std::string defaultSample();

}  // namespace kvq::app
