// RAII ownership of HDF5 C API identifiers (hid_t) and a scoped silencer of HDF5's
// automatic error printing. Private to kvq_core: nothing outside core/src includes
// an HDF5 header through this file.
#pragma once

#include <hdf5.h>

#include <string>
#include <utility>

#include "h5/bounded_deflate.h"

namespace kvq::h5 {

// Owns one hid_t and closes it with CloseFn on destruction. A negative id means
// "nothing owned" (HDF5 returns negative ids on failure).
template <herr_t (*CloseFn)(hid_t)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : m_id(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : m_id(std::exchange(other.m_id, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      m_id = std::exchange(other.m_id, H5I_INVALID_HID);
    }
    return *this;
  }

  hid_t get() const { return m_id; }
  bool valid() const { return m_id >= 0; }
  explicit operator bool() const { return valid(); }

  // Closes now; returns false when HDF5 reported an error while closing (for a
  // file that can mean data was not flushed, which the writer must not ignore).
  bool reset() {
    bool ok = true;
    if (m_id >= 0) ok = CloseFn(m_id) >= 0;
    m_id = H5I_INVALID_HID;
    return ok;
  }

 private:
  hid_t m_id = H5I_INVALID_HID;
};

using File = Handle<H5Fclose>;
using Group = Handle<H5Gclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using Attribute = Handle<H5Aclose>;
using PropList = Handle<H5Pclose>;
using Object = Handle<H5Oclose>;  // a group or dataset opened with H5Oopen

// Turns off HDF5's automatic error-stack printing for the current thread for its
// lifetime and restores the previous handler afterwards. Every public entry point
// of the readers and writers holds one: failures become kvq::Error instead of
// text on stderr. (HDF5's error settings are per thread in a thread-safe build.)
// It also makes sure the process-wide setup (bounded deflate, no plugins) is done.
class ErrorSilencer {
 public:
  ErrorSilencer() {
    setUpLibrary();
    m_saved = H5Eget_auto2(H5E_DEFAULT, &m_func, &m_data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~ErrorSilencer() {
    if (m_saved) H5Eset_auto2(H5E_DEFAULT, m_func, m_data);
  }
  ErrorSilencer(const ErrorSilencer&) = delete;
  ErrorSilencer& operator=(const ErrorSilencer&) = delete;

 private:
  H5E_auto2_t m_func = nullptr;
  void* m_data = nullptr;
  bool m_saved = false;
};

// The innermost message on the current thread's HDF5 error stack ("" if empty),
// e.g. "truncated file: eof = 1024, sblock->base_addr = 0, stored_eof = 2048".
inline std::string lastErrorText() {
  std::string text;
  auto visit = [](unsigned, const H5E_error2_t* err, void* out) -> herr_t {
    auto* s = static_cast<std::string*>(out);
    if (s->empty() && err != nullptr && err->desc != nullptr) *s = err->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, visit, &text);
  return text;
}

}  // namespace kvq::h5
