// Process-wide HDF5 settings for programs that open files other people made.
// (core/src/h5/ keeps every other HDF5 detail private.)
#pragma once

namespace kvq {

// Call first thing in main(), before anything touches HDF5. HDF5 then skips its own
// clean-up at exit — which, after some damaged files were refused, loops over
// objects it cannot close and prints "infinite loop closing library" to stderr —
// and never prints its error stack on this thread; the bounded deflate filter is
// installed and plugin loading turned off (the readers do that part anyway).
// Returns false when the call came too late (HDF5 already in use): the clean-up at
// exit then stays.
bool prepareHdf5ForProcess();

}  // namespace kvq
