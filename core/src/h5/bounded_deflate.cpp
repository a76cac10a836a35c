#include "h5/bounded_deflate.h"

#include <dlfcn.h>
#include <hdf5.h>
#include <zlib.h>

#include <limits>
#include <mutex>

namespace kvq::h5 {
namespace {

thread_local uint64_t t_limit = 0;  // 0: no DecodeLimit in place
thread_local std::string t_refusal;
bool g_installed = false;

// Decompresses `nbytes` of zlib stream into a buffer of exactly t_limit bytes;
// anything that would not fill it exactly is refused (returns 0, HDF5's failure).
size_t inflateBounded(size_t nbytes, size_t* bufSize, void** buf) {
  if (t_limit == 0) {
    t_refusal = "was read without a size limit (internal error)";
    return 0;
  }
  if (t_limit > std::numeric_limits<uInt>::max() || nbytes > std::numeric_limits<uInt>::max()) {
    t_refusal = "is too large to decompress";
    return 0;
  }
  void* out = H5allocate_memory(static_cast<size_t>(t_limit), false);
  if (out == nullptr) {
    t_refusal = "cannot be decompressed (out of memory)";
    return 0;
  }
  z_stream z{};
  z.next_in = static_cast<Bytef*>(*buf);
  z.avail_in = static_cast<uInt>(nbytes);
  z.next_out = static_cast<Bytef*>(out);
  z.avail_out = static_cast<uInt>(t_limit);
  int status = inflateInit(&z);
  if (status == Z_OK) status = inflate(&z, Z_FINISH);
  const uLong produced = z.total_out;
  // Z_BUF_ERROR with no room left: more output was pending than the chunk holds.
  const bool overflow = z.avail_out == 0 && status != Z_STREAM_END;
  const std::string zlibMessage = z.msg != nullptr ? z.msg : "truncated";
  inflateEnd(&z);
  if (status != Z_STREAM_END || produced != t_limit) {
    H5free_memory(out);
    if (overflow) {
      t_refusal = "decodes to more than its nominal " + std::to_string(t_limit) + " bytes";
    } else if (status == Z_STREAM_END) {
      t_refusal = "decodes to " + std::to_string(produced) + " bytes, short of its nominal " +
                  std::to_string(t_limit) + " bytes";
    } else {
      t_refusal = "is not a valid deflate stream (zlib: " + zlibMessage + ")";
    }
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *bufSize = static_cast<size_t>(t_limit);
  return static_cast<size_t>(t_limit);
}

size_t deflateChunk(size_t cdCount, const unsigned int cdValues[], size_t nbytes, size_t* bufSize,
                    void** buf) {
  const int level = cdCount > 0 && cdValues[0] <= 9 ? static_cast<int>(cdValues[0]) : Z_DEFAULT_COMPRESSION;
  uLongf outBytes = compressBound(static_cast<uLong>(nbytes));
  void* out = H5allocate_memory(outBytes, false);
  if (out == nullptr) return 0;
  if (compress2(static_cast<Bytef*>(out), &outBytes, static_cast<const Bytef*>(*buf),
                static_cast<uLong>(nbytes), level) != Z_OK) {
    H5free_memory(out);
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *bufSize = outBytes;
  return outBytes;
}

size_t boundedDeflateFilter(unsigned int flags, size_t cdCount, const unsigned int cdValues[], size_t nbytes,
                            size_t* bufSize, void** buf) {
  if ((flags & H5Z_FLAG_REVERSE) != 0) return inflateBounded(nbytes, bufSize, buf);
  return deflateChunk(cdCount, cdValues, nbytes, bufSize, buf);
}

void install() {
  H5open();
  // A hostile file naming an unknown filter must not make HDF5 load code.
  H5PLset_loading_state(0);
  using RegisterFn = herr_t (*)(const H5Z_class2_t*);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym returns void*
  const auto registerFilter = reinterpret_cast<RegisterFn>(dlsym(RTLD_DEFAULT, "H5Z_register"));
  if (registerFilter == nullptr) return;
  static const H5Z_class2_t kFilter = {
      H5Z_CLASS_T_VERS, H5Z_FILTER_DEFLATE,  1, 1, "deflate (kvq, bounded)", nullptr,
      nullptr,          boundedDeflateFilter};
  g_installed = registerFilter(&kFilter) >= 0;
}

}  // namespace

void setUpLibrary() {
  static std::once_flag once;
  std::call_once(once, install);
}

bool boundedDeflateInstalled() {
  setUpLibrary();
  return g_installed;
}

DecodeLimit::DecodeLimit(uint64_t nominalBytes) : m_saved(t_limit) {
  t_limit = nominalBytes;
  t_refusal.clear();
}

DecodeLimit::~DecodeLimit() {
  t_limit = m_saved;
}

std::string takeDecodeRefusal() {
  std::string refusal;
  refusal.swap(t_refusal);
  return refusal;
}

}  // namespace kvq::h5
