#include "process_setup.h"

#include "kvq/base/hdf5_process.h"
#ifdef KVQ_HAVE_CUDA
#include "kvq/gpu/cuda_backend.h"
#endif
#ifdef KVQ_HAVE_CUBLAS
#include "kvq/gpu/cublas_model_gemm.h"
#endif

namespace kvq::app {

void prepareProcess() {
  prepareHdf5ForProcess();  // first: before anything touches HDF5
#ifdef KVQ_HAVE_CUDA
  gpu::registerCudaBackend();
#endif
#ifdef KVQ_HAVE_CUBLAS
  gpu::registerCublasModelGemm();
#endif
}

}  // namespace kvq::app
