// A number for a JSON report. JSON has no infinity or NaN: a value that is not finite (an exact
// reconstruction's SNR, the perplexity of no tokens) is written as null.
#pragma once

#include <cmath>
#include <nlohmann/json.hpp>

namespace kvq {

inline nlohmann::json finiteOrNull(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace kvq
