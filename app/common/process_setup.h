// What both executables do first in main(), before anything else runs: HDF5 made safe for
// this process and the GPU engines this build has registered with core.
#pragma once

namespace kvq::app {

// HDF5's process-wide settings (kvq/base/hdf5_process.h), then the CUDA RVQ backend ("cuda" and
// "auto" in a backend choice reach the GPU) and the cuBLAS engine of the model pass's weight
// products (kvq ppl, the GUI's Model impact) where they are built.
void prepareProcess();

}  // namespace kvq::app
