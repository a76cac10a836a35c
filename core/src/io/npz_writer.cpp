#include "kvq/io/npz_writer.h"

#include <zlib.h>

#include <limits>

#include "kvq/base/error.h"
#include "kvq/base/file_util.h"

namespace kvq {
namespace {

void put16(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

uint32_t crc32Of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  size_t offset = 0;
  while (offset < bytes.size()) {  // zlib takes uInt lengths
    const size_t n = std::min<size_t>(bytes.size() - offset, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + offset), static_cast<uInt>(n));
    offset += n;
  }
  return static_cast<uint32_t>(crc);
}

constexpr uint32_t kMaxZip = std::numeric_limits<uint32_t>::max();

}  // namespace

std::string npyFile(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                    size_t bytes) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < shape.size(); ++i)
    dict += std::to_string(shape[i]) + (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  dict += "), }";
  // magic(6) + version(2) + header length(2) + dict + padding + '\n' = multiple of 64.
  const size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<uint32_t>(dict.size()));
  out += dict;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}

void NpzWriter::add(const std::string& name, const std::string& descr, const std::vector<int64_t>& shape,
                    const void* data, size_t bytes) {
  Entry entry{name + ".npy", npyFile(descr, shape, data, bytes)};
  if (entry.bytes.size() >= kMaxZip) throwBadInput("", name, "array too large for an npz without ZIP64");
  m_entries.push_back(std::move(entry));
}

void NpzWriter::addFloat32(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  size_t count = 1;
  for (int64_t s : shape) count *= static_cast<size_t>(s);
  add(name, "<f4", shape, data, count * sizeof(float));
}

void NpzWriter::addInt32(const std::string& name, const std::vector<int64_t>& shape, const int32_t* data) {
  size_t count = 1;
  for (int64_t s : shape) count *= static_cast<size_t>(s);
  add(name, "<i4", shape, data, count * sizeof(int32_t));
}

void NpzWriter::addString(const std::string& name, const std::string& text) {
  std::string utf32;
  for (char c : text) {
    if (static_cast<unsigned char>(c) > 0x7f) throwInternal(name, "npz string must be ASCII");
    put32(utf32, static_cast<unsigned char>(c));
  }
  const size_t chars = text.empty() ? 1 : text.size();
  if (text.empty()) put32(utf32, 0);
  add(name, "<U" + std::to_string(chars), {}, utf32.data(), utf32.size());
}

std::string NpzWriter::archive() const {
  std::string out, central;
  for (const Entry& e : m_entries) {
    const uint32_t crc = crc32Of(e.bytes);
    const auto size = static_cast<uint32_t>(e.bytes.size());
    const auto offset = static_cast<uint32_t>(out.size());
    // Local file header: version 2.0, no flags, method 0 (stored), DOS time 1980-01-01.
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, static_cast<uint32_t>(e.name.size()));
    put16(out, 0);
    out += e.name;
    out += e.bytes;
    // Central directory record.
    put32(central, 0x02014b50);
    put16(central, 20);
    put16(central, 20);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, size);
    put32(central, size);
    put16(central, static_cast<uint32_t>(e.name.size()));
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put32(central, 0);
    put32(central, offset);
    central += e.name;
    if (out.size() >= kMaxZip) throwBadInput("", "npz", "archive too large without ZIP64");
  }
  const auto centralOffset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);  // end of central directory
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(m_entries.size()));
  put16(out, static_cast<uint32_t>(m_entries.size()));
  put32(out, static_cast<uint32_t>(central.size()));
  put32(out, centralOffset);
  put16(out, 0);
  return out;
}

void NpzWriter::write(const std::string& path) const {
  atomicWriteFile(path, archive());
}

}  // namespace kvq
