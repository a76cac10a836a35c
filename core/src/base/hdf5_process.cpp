#include "kvq/base/hdf5_process.h"

#include <hdf5.h>

#include "h5/bounded_deflate.h"

namespace kvq {

bool prepareHdf5ForProcess() {
  // Must precede every other HDF5 call: the library registers its atexit handler
  // when it initialises, unless told not to first.
  const bool early = H5dont_atexit() >= 0;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  h5::setUpLibrary();
  return early;
}

}  // namespace kvq
