// The child side of isolated opening: validate, scan, report (kvq/isolate/validator.h).
#include "kvq/isolate/validator.h"

#include <hdf5.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "isolate/protocol.h"
#include "kvq/base/error.h"
#include "kvq/base/step_trace.h"
#include "kvq/dump/dump_json.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/io/codebook_file.h"

namespace kvq {
namespace {

int g_outFd = 1;

#ifdef KVQ_VALIDATOR_TEST_HOOKS
// Test hook: KVQ_VALIDATOR_FAULT="<fault>@<text>" makes the validator crash
// (segv), hang (hang), burn CPU (spin), exhaust its memory (memory) or abort right after
// reporting the first step containing <text>, so tests can prove that each kind of
// failure is contained and explained. Built only with KVQ_BUILD_TESTS.
void injectFault(std::string_view step) {
  static const std::string spec = [] {
    const char* value = std::getenv("KVQ_VALIDATOR_FAULT");
    return std::string(value != nullptr ? value : "");
  }();
  const size_t at = spec.find('@');
  if (at == std::string::npos || step.find(spec.substr(at + 1)) == std::string_view::npos) return;
  const std::string fault = spec.substr(0, at);
  if (fault == "segv") {
    std::signal(SIGSEGV, SIG_DFL);  // a plain crash even under a sanitizer's handler
    std::raise(SIGSEGV);
  } else if (fault == "hang") {
    for (;;) ::pause();
  } else if (fault == "spin") {
    std::atomic<uint64_t> spins{0};
    for (;;) spins.fetch_add(1, std::memory_order_relaxed);
  } else if (fault == "memory") {
    std::vector<std::unique_ptr<char[]>> hog;
    for (;;) {
      constexpr size_t kBlock = size_t{64} << 20;
      hog.push_back(std::make_unique<char[]>(kBlock));
      std::memset(hog.back().get(), 1, kBlock);
    }
  } else if (fault == "abort") {
    std::abort();
  }
}
#else
void injectFault(std::string_view) {}
#endif

void emit(const nlohmann::json& event) {
  if (!isolate::writeEvent(g_outFd, event)) ::_exit(1);  // the parent is gone
}

// Reports the step before the library call it names: if that call crashes, the
// parent has already read where.
void stepSink(std::string_view step) {
  emit({{"event", "step"}, {"step", std::string(step)}});
  injectFault(step);
}

// Progress of this process's share, at most once per percent.
TaskControl progressControl() {
  TaskControl control;
  control.onProgress = [last = -1.0](double fraction, const std::string&) mutable {
    if (fraction < 1.0 && fraction - last < 0.01) return;
    last = fraction;
    emit({{"event", "progress"}, {"fraction", fraction}});
  };
  return control;
}

void validateDump(const ValidatorRequest& request) {
  OpenOptions options;
  options.scanValues = false;  // the statistics pass below checks every value
  const auto reader = DumpReader::open(request.path, options);
  const DumpInfo& info = reader->info();
  emit({{"event", "identity"}, {"identity", isolate::identityToJson(reader->identity())}});
  emit({{"event", "header"}, {"info", dumpHeaderToJson(info)}});
  if (!request.statistics) return;
  const std::vector<int>& wanted = request.layers.empty() ? info.layers : request.layers;
  std::vector<int> mine;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (std::find(info.layers.begin(), info.layers.end(), wanted[i]) == info.layers.end())
      throwBadInput(request.path, "/layers/" + std::to_string(wanted[i]), "no such layer in this dump");
    if (static_cast<int>(i % static_cast<size_t>(request.workers)) == request.worker) {
      mine.push_back(wanted[i]);
    }
  }
  const TaskControl control = progressControl();
  scanLayers(
      *reader, mine,
      [](LayerStats&& ls) {
        emit({{"event", "layer"}, {"stats", layerStatsToJson(ls)}});
      },
      &control);
  if (request.worker == 0) reader->tokenIds();  // /tokens is read in-process later: read it here first
}

void validateCodebooks(const ValidatorRequest& request) {
  const FileIdentity identity = identifyFile(request.path);
  const CodebookFile file = readCodebookFile(request.path, &identity);
  emit({{"event", "identity"}, {"identity", isolate::identityToJson(identity)}});
  emit({{"event", "codebooks"}, {"sets", file.sets.size()}});
}

const char* errorKindName(ErrorKind kind) {
  return kind == ErrorKind::BadInput ? "bad_input" : "internal";
}

}  // namespace

// RLIMIT_AS = what this process maps now (its binary and libraries) + extra bytes.
void limitAddressSpace(uint64_t extra) {
  if (extra == 0) return;
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0;
  statm >> pages;  // total program size in pages
  const uint64_t limit = pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) + extra;
  const rlimit rl{limit, limit};
  ::setrlimit(RLIMIT_AS, &rl);
}

int runValidator(const ValidatorRequest& request, int outFd) {
  limitAddressSpace(request.addressSpaceBytes);
  g_outFd = outFd;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // failures are reported as events, not printed
  emit({{"event", "hello"}, {"protocol", isolate::kProtocolVersion}, {"pid", ::getpid()}});
  setStepSink(&stepSink);
  try {
    if (request.workers < 1 || request.worker < 0 || request.worker >= request.workers) {
      throwInternal("validator", "bad worker " + std::to_string(request.worker) + " of " +
                                     std::to_string(request.workers));
    }
    if (request.kind == UntrustedKind::Dump) {
      validateDump(request);
    } else {
      validateCodebooks(request);
    }
  } catch (const Error& e) {
    emit({{"event", "error"},
          {"kind", errorKindName(e.kind())},
          {"file", e.file()},
          {"where", e.where()},
          {"problem", e.problem()}});
    return e.kind() == ErrorKind::BadInput ? 2 : 1;
  } catch (const std::bad_alloc&) {
    emit({{"event", "error"},
          {"kind", "memory"},
          {"file", request.path},
          {"where", ""},
          {"problem", "out of memory"}});
    return 3;
  } catch (const std::exception& e) {
    emit({{"event", "error"},
          {"kind", "internal"},
          {"file", request.path},
          {"where", ""},
          {"problem", e.what()}});
    return 1;
  }
  setStepSink(nullptr);
  emit({{"event", "done"}});
  return 0;
}

}  // namespace kvq
