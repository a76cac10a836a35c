// The instruction sets this CPU runs, for tests that check every kernel path
// (rvq/cpu_kernels.h picks one at run time; KVQ_CPU_ISA lowers the best one).
#pragma once

#include <vector>

#include "rvq/cpu_kernels.h"  // internal

namespace kvq::test {

inline std::vector<cpu::Isa> availableIsas() {
  std::vector<cpu::Isa> isas{cpu::Isa::Scalar};
  if (cpu::detectIsa() != cpu::Isa::Scalar) isas.push_back(cpu::Isa::Avx2);
  if (cpu::detectIsa() == cpu::Isa::Avx512) isas.push_back(cpu::Isa::Avx512);
  return isas;
}

}  // namespace kvq::test
