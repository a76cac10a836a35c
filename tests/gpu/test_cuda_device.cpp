// Runs on a machine with a CUDA device; skips (with the reason) elsewhere.
#include <gtest/gtest.h>

#include "kvq/base/error.h"
#include "kvq/gpu/cuda_device.h"

namespace {

TEST(CudaDevice, ListingNeverThrowsWithoutDevice) {
  std::vector<kvq::gpu::CudaDeviceInfo> devices;
  ASSERT_NO_THROW(devices = kvq::gpu::listCudaDevices());
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.totalMemory, 0u);
    EXPECT_GE(d.computeMajor, 8) << "this build targets sm_80 and sm_90";
  }
}

TEST(CudaDevice, SelfTestKernelComputesOnEveryDevice) {
  const auto devices = kvq::gpu::listCudaDevices();
  if (devices.empty()) GTEST_SKIP() << "no CUDA device on this machine";
  for (const auto& d : devices) EXPECT_NO_THROW(kvq::gpu::cudaSelfTest(d.index)) << d.name;
}

}  // namespace
