// The validator — the child-process side of opening an untrusted file.
//
// `kvq validate --json-stream FILE` (a hidden subcommand) calls runValidator: it
// opens and validates FILE with the ordinary readers, scans its values and
// computes its statistics in one pass, and streams what it finds to its parent as
// JSON lines on outFd (the protocol: core/src/isolate/protocol.h). Before each
// risky library call it reports the step it is about to take, so that a crash,
// hang or limit hit — which kill this process, not the parent — can be explained
// ("while reading root attribute 'model'"). The parent side is
// kvq/isolate/open_file.h; docs/reliability.md describes the design.
#pragma once

#include <string>
#include <vector>

namespace kvq {

enum class UntrustedKind {
  Dump,       // a KV dump: structure, values, statistics
  Codebooks,  // a codebook file: everything readCodebookFile reads
};

struct ValidatorRequest {
  std::string path;
  UntrustedKind kind = UntrustedKind::Dump;
  // Dumps: this process scans the layers whose position in the dump's ascending
  // layer list is worker modulo workers (the parent starts `workers` of them).
  int worker = 0;
  int workers = 1;
  // Dumps: the layers to scan (each must be present), shared out as above; empty:
  // every layer. A process that reads only some layers has only those checked.
  std::vector<int> layers;
  bool statistics = true;  // false: structure only (the statistics came from the cache)
  // Address space (RLIMIT_AS) this process may add to what it has mapped when it
  // starts, set before the file is touched; 0: none. Measured from the start, not
  // set by the parent before exec, so that the shared libraries kvq is linked with
  // (cuBLAS alone maps hundreds of MiB) do not count against the file's budget.
  uint64_t addressSpaceBytes = 0;
};

// Runs the validation and writes its events to outFd. Returns the exit code of
// the process: 0 validated, 2 refused (an "error" event says why), 3 out of memory,
// 1 internal error. Never throws.
int runValidator(const ValidatorRequest& request, int outFd);

}  // namespace kvq
