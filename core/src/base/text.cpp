#include "kvq/base/text.h"

#include <cstdio>

namespace kvq {
namespace {

constexpr size_t kMaxQuotedBytes = 100;

// Bytes of one UTF-8 sequence starting with `lead`, or 0 for an invalid lead byte.
size_t utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

std::string hexByte(unsigned char byte) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", byte);
  return text;
}

}  // namespace

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and
// code points past U+10FFFF included), or npos.
size_t firstInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t n = utf8Length(lead);
    if (n == 0 || i + n > text.size()) return i;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return i;
    }
    const auto second = static_cast<unsigned char>(text[i + 1 < text.size() ? i + 1 : i]);
    if ((lead == 0xE0 && second < 0xA0) || (lead == 0xED && second > 0x9F) ||
        (lead == 0xF0 && second < 0x90) || (lead == 0xF4 && second > 0x8F)) {
      return i;
    }
    i += n;
  }
  return std::string_view::npos;
}

std::string utf8Problem(std::string_view text) {
  const size_t bad = firstInvalidUtf8(text);
  if (bad == std::string_view::npos) return "";
  return "byte " + hexByte(static_cast<unsigned char>(text[bad])) + " at offset " + std::to_string(bad);
}

std::string quoteForMessage(std::string_view text) {
  std::string out = "\"";
  size_t shown = 0;
  for (const char c : text) {
    if (shown == kMaxQuotedBytes) {
      out += "…";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte == '"' || byte == '\\') {
      out += '\\';
      out += c;
    } else if (byte >= 0x20 && byte < 0x7F) {
      out += c;
    } else {
      out += "\\x" + hexByte(byte).substr(2);
    }
    ++shown;
  }
  out += '"';
  if (text.size() > kMaxQuotedBytes) out += " (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace kvq
