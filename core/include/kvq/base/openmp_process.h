// Process-wide OpenMP setting for programs whose threads share a busy machine.
#pragma once

namespace kvq {

// Call first thing in main() (argv: main's, null-terminated). When the environment names no
// OMP_WAIT_POLICY, sets it to "passive" and re-executes the program (same pid, same arguments):
// libgomp reads the policy once, when it loads, before main runs, so only a fresh image sees it.
// Passive threads that wait at the end of a parallel region sleep instead of spinning; on the
// shared 2-core machine that cut the model pass's CPU time by a fifth (docs/benchmarks.md,
// "Model pass"). A policy the user set is kept; where re-executing fails (or off Linux) the
// program goes on with the default policy. Returns only in those cases or after the re-exec.
void preferPassiveOpenMpWait(char** argv);

}  // namespace kvq
