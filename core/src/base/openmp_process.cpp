#include "kvq/base/openmp_process.h"

#include <unistd.h>

#include <cstdlib>

namespace kvq {

void preferPassiveOpenMpWait(char** argv) {
#ifdef __linux__
  if (argv == nullptr || argv[0] == nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: go on with the policy libgomp has
  unsetenv("OMP_WAIT_POLICY");    // children then start as this process did
#else
  (void)argv;
#endif
}

}  // namespace kvq
