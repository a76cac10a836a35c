// Scratch memory of computeEntryStats (sort buffers, offsets), reused across calls.
#pragma once

#include <cstdint>

#include "device_buffer.h"

namespace kvq::gpu {

struct EntryStatsWorkspace {
  DeviceBuffer<int32_t> sortedCodes;
  DeviceBuffer<int32_t> order;        // 0..n-1
  DeviceBuffer<int32_t> sortedOrder;  // vector indices sorted by code (stable)
  DeviceBuffer<int32_t> histogram;    // [C]
  DeviceBuffer<int32_t> offsets;      // [C + 1]
  DeviceBuffer<unsigned char> cubTemp;
};

}  // namespace kvq::gpu
