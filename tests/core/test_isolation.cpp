// The isolated open path end to end, with the real validator (the kvq binary of this
// build): results equal the in-process readers' to the last bit; every way a child
// can fail — crash, hang, memory, CPU, a broken protocol, a missing binary — is a
// clean Error naming the file and the library's last step; the reader's own refusals
// keep their exact messages; files changed after validation are refused.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/dump_stats.h"
#include "kvq/dump/dump_writer.h"
#include "kvq/io/codebook_file.h"
#include "kvq/isolate/open_file.h"
#include "kvq/isolate/validator_path.h"
#include "kvq/rvq/rvq_config.h"
#include "synth_dump.h"
#include "test_util.h"

namespace kvq {
namespace {

// KVQ_VALIDATOR_FAULT for one scope (the children inherit the environment).
class ScopedFault {
 public:
  explicit ScopedFault(const std::string& spec) { ::setenv("KVQ_VALIDATOR_FAULT", spec.c_str(), 1); }
  ~ScopedFault() { ::unsetenv("KVQ_VALIDATOR_FAULT"); }
  ScopedFault(const ScopedFault&) = delete;
  ScopedFault& operator=(const ScopedFault&) = delete;
};

OpenPolicy isolatedPolicy(const std::filesystem::path& dir) {
  OpenPolicy policy;
  policy.validator = KVQ_BIN;
  policy.useCache = false;
  policy.cacheDirectory = (dir / "cache").string();
  return policy;
}

std::string synthDump(const std::filesystem::path& dir, int layers = 5, int64_t tokens = 300) {
  return test::writeSynthDumpOf((dir / "dump.h5").string(), layers, 2, 16, tokens, 9);
}

// The message of the Error f throws (and its kind), or "(accepted)".
template <class F>
std::string failure(F&& f, ErrorKind expected = ErrorKind::BadInput) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), expected) << e.what();
    return e.what();
  }
  return "(accepted)";
}

// What opening a 2-layer dump in a child whose HDF5 library meets `fault`, under the limits
// `limit` sets, fails with; "<dump>" stands for the dump's path.
std::string failureUnderLimit(const char* fault, const std::function<void(IsolationLimits&)>& limit) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, 2, 50);
  const ScopedFault scoped(fault);
  OpenPolicy policy = isolatedPolicy(dir);
  limit(policy.limits);
  std::string message = failure([&] { openDump(path, policy); });
  if (message.rfind(path, 0) == 0) message.replace(0, path.size(), "<dump>");
  return message;
}

void expectSameStats(const std::vector<LayerStats>& a, const std::vector<LayerStats>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t l = 0; l < a.size(); ++l) {
    EXPECT_EQ(a[l].layer, b[l].layer);
    for (int k = 0; k < 2; ++k) {
      const KindStats& x = k == 0 ? a[l].keys : a[l].values;
      const KindStats& y = k == 0 ? b[l].keys : b[l].values;
      // Exact: the JSON the child sends round-trips doubles bit for bit.
      EXPECT_EQ(x.all.meanAbs, y.all.meanAbs);
      EXPECT_EQ(x.all.std, y.all.std);
      EXPECT_EQ(x.all.maxAbs, y.all.maxAbs);
      EXPECT_EQ(x.all.excessKurtosis, y.all.excessKurtosis);
      EXPECT_EQ(x.all.count, y.all.count);
      ASSERT_EQ(x.perHead.size(), y.perHead.size());
      for (size_t h = 0; h < x.perHead.size(); ++h) EXPECT_EQ(x.perHead[h].std, y.perHead[h].std);
      EXPECT_EQ(x.channelMeanAbs, y.channelMeanAbs);
      EXPECT_EQ(x.channelMaxAbs, y.channelMaxAbs);
      EXPECT_EQ(x.outlierChannels, y.outlierChannels);
    }
  }
}

TEST(Isolation, WorkersMatchInProcessStatisticsExactly) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir);
  const std::vector<LayerStats> reference = computeDumpStats(*DumpReader::open(path));
  for (int workers : {1, 2, 3}) {
    OpenPolicy policy = isolatedPolicy(dir);
    policy.workers = workers;
    int headers = 0;
    std::vector<int> order;
    OpenListener listener;
    listener.onHeader = [&](const DumpInfo& info) {
      EXPECT_TRUE(order.empty()) << "the header comes before any statistics";
      EXPECT_EQ(info.layers, (std::vector<int>{0, 1, 2, 3, 4}));
      ++headers;
    };
    listener.onLayer = [&](const LayerStats& ls) { order.push_back(ls.layer); };
    const OpenedDump opened = openDump(path, policy, listener);
    EXPECT_EQ(headers, 1);
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4})) << workers << " workers";
    EXPECT_FALSE(opened.statsFromCache);
    ASSERT_TRUE(opened.reader);
    EXPECT_EQ(opened.reader->info().tokens, 300);
    expectSameStats(opened.stats, reference);
  }
  OpenPolicy inProcess = isolatedPolicy(dir);
  inProcess.isolate = false;
  expectSameStats(openDump(path, inProcess).stats, reference);
}

TEST(Isolation, ReaderRefusalsKeepTheirExactMessage) {
  const auto dir = test::freshTempDir();
  // NaN in layer 1 keys at token 7, head 1, channel 3: found by a worker's scan.
  std::vector<float> keys(static_cast<size_t>(20 * 2 * 4), 0.5f), values(keys.size(), -0.25f);
  keys[(7 * 2 + 1) * 4 + 3] = std::numeric_limits<float>::quiet_NaN();
  const DumpHeader h = test::dumpHeader("nan", 2, 2, 4, 20);
  const std::string path = (dir / "nan.h5").string();
  auto writer = DumpWriter::create(path, h);
  writer->writeLayer(0, test::slabOf(20, 2, 4, values), test::slabOf(20, 2, 4, values));
  writer->writeLayer(1, test::slabOf(20, 2, 4, keys), test::slabOf(20, 2, 4, values));
  writer->commit();
  const std::string inProcess = failure([&] { DumpReader::open(path); });
  EXPECT_EQ(inProcess, path + ": /layers/1/keys: NaN at token 7, head 1, channel 3");
  OpenPolicy policy = isolatedPolicy(dir);
  policy.workers = 2;
  EXPECT_EQ(failure([&] { openDump(path, policy); }), inProcess);
  const std::string text = (dir / "notes.h5").string();
  std::ofstream(text) << "not hdf5\n";
  EXPECT_EQ(failure([&] { openDump(text, policy); }), text + ": not an HDF5 file (no HDF5 signature)");
  EXPECT_EQ(failure([&] { openDump((dir / "missing.h5").string(), policy); }),
            (dir / "missing.h5").string() + ": no such file");
}

TEST(Isolation, RealCrashingFileIsContained) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan the validator child reports crashes and reserves memory its own way";
#endif
  const std::string path = std::string(KVQ_SOURCE_DIR) + "/tests/data/hostile/crash_global_heap.h5";
  EXPECT_EQ(
      failure([&] { openDump(path, isolatedPolicy(test::freshTempDir())); }),
      path +
          ": the HDF5 library crashed (SIGSEGV) while reading root attribute 'model': the file is damaged "
          "or hostile");
}

TEST(Isolation, CrashAfterTheHeaderNamesTheRead) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir);
  const ScopedFault fault("segv@reading /layers/3/values");
  bool header = false;
  OpenListener listener;
  listener.onHeader = [&](const DumpInfo&) { header = true; };
  OpenPolicy policy = isolatedPolicy(dir);
  policy.workers = 2;
  EXPECT_EQ(
      failure([&] { openDump(path, policy, listener); }),
      path +
          ": the HDF5 library crashed (SIGSEGV) while reading /layers/3/values tokens [0, 300): the file is "
          "damaged or hostile");
  EXPECT_TRUE(header);
}

TEST(Isolation, HangHitsTheWallTimeLimit) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, 2, 50);
  const ScopedFault fault("hang@reading root attribute 'head_dim'");
  OpenPolicy policy = isolatedPolicy(dir);
  policy.limits.stallSeconds = 3;  // the child's start-up must fit, even on a loaded machine
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(
      failure([&] { openDump(path, policy); }),
      path +
          ": the HDF5 library stopped responding (no progress for 3 s, the wall-time limit) while reading "
          "root attribute 'head_dim': the file is damaged or hostile");
  // Not a timing assertion: proof that the hung child did not keep us waiting for good.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST(Isolation, MemoryHitsTheLimit) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan the validator child reports crashes and reserves memory its own way";
#endif
  EXPECT_EQ(failureUnderLimit("memory@reading root attribute 'key_rope'",
                              [](IsolationLimits& l) { l.memoryBytes = uint64_t{512} << 20; }),
            "<dump>: the HDF5 library exceeded the memory limit (512 MiB) while reading root attribute "
            "'key_rope': the file is damaged or hostile");
}

TEST(Isolation, CpuHitsTheLimit) {
  EXPECT_EQ(
      failureUnderLimit("spin@reading root attribute 'model'",
                        [](IsolationLimits& l) {
                          l.cpuSeconds = 1;
                          l.stallSeconds = 600;  // spinning is silent: only the CPU limit may end it
                        }),
      "<dump>: the HDF5 library exceeded the CPU-time limit (1 s) while reading root attribute 'model': "
      "the file is damaged or hostile");
}

TEST(Isolation, CodebookFilesAreValidatedInAChild) {
  const auto dir = test::freshTempDir();
  CodebookFile file;
  file.config = presetConfig("fast");
  file.config.codebookSize = 4;
  file.config.depth = 2;
  file.config.groupSize = 4;
  file.model = "m";
  file.headDim = 8;
  file.numKvHeads = 2;
  QuantizerSet set;
  set.layer = 1;
  set.kind = Kind::Values;
  set.channelOrder = {0, 1, 2, 3, 4, 5, 6, 7};
  set.codebooks.emplace_back(2, 4, 4);
  for (size_t i = 0; i < set.codebooks[0].data.size(); ++i)
    set.codebooks[0].data[i] = 0.5f * static_cast<float>(i);
  file.sets.push_back(set);
  const std::string path = (dir / "cb.h5").string();
  writeCodebookFile(path, file);
  const CodebookFile read = openCodebookFile(path, isolatedPolicy(dir));
  ASSERT_EQ(read.sets.size(), 1u);
  EXPECT_EQ(read.sets[0].codebooks[0].data, set.codebooks[0].data);
  {
    const ScopedFault fault("segv@opening /layers/1/values/codebooks");
    EXPECT_EQ(
        failure([&] { openCodebookFile(path, isolatedPolicy(dir)); }),
        path +
            ": the HDF5 library crashed (SIGSEGV) while opening /layers/1/values/codebooks: the file is "
            "damaged or hostile");
  }
  // A dump is not a codebook file: the reader's own refusal, through the child.
  const std::string dump = synthDump(dir, 1, 20);
  EXPECT_EQ(failure([&] { openCodebookFile(dump, isolatedPolicy(dir)); }),
            failure([&] { readCodebookFile(dump); }));
}

TEST(Isolation, MissingOrForeignValidatorIsAnInternalError) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, 1, 20);
  OpenPolicy policy = isolatedPolicy(dir);
  policy.validator = (dir / "no-such-kvq").string();
  EXPECT_EQ(failure([&] { openDump(path, policy); }, ErrorKind::Internal),
            policy.validator + ": cannot start the validator: No such file or directory");
  // A validator of another protocol version, and one that prints garbage.
  const std::string script = (dir / "fake-kvq").string();
  for (const auto& [body, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"(echo '{"event":"hello","protocol":99}')", "speaks protocol 99, this program needs 1"},
           {"echo not json", "sent a line that is not JSON"},
           {"exit 0", "exited with status 0 without a result"},
           {"echo oops >&2; exit 7", "exited with status 7 without a result: oops"}}) {
    std::ofstream(script) << "#!/bin/sh\n" << body << "\n";
    ::chmod(script.c_str(), 0755);
    policy.validator = script;
    const std::string message = failure([&] { openDump(path, policy); }, ErrorKind::Internal);
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

TEST(Isolation, CancelKillsTheValidators) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, 2, 50);
  const ScopedFault fault("hang@reading root attribute 'model'");
  std::atomic<bool> cancel{false};
  TaskControl control;
  control.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  EXPECT_EQ(failure([&] { openDump(path, isolatedPolicy(dir), {}, &control); }, ErrorKind::Cancelled),
            "cancelled by the user");
  canceller.join();
}

TEST(Isolation, FileChangedAfterValidationIsRefused) {
  const auto dir = test::freshTempDir();
  const std::string path = synthDump(dir, 2, 50);
  FileIdentity stale = identifyFile(path);
  stale.mtimeNs -= 1000000000;  // as if validated before the last write
  OpenOptions options;
  options.expectedIdentity = stale;
  EXPECT_EQ(failure([&] { DumpReader::open(path, options); }),
            path + ": the file changed after it was validated (it was modified); open it again");
  // Modified in place after a validated open: the next read is refused.
  const auto reader = DumpReader::open(path);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::ofstream(path, std::ios::app) << "x";
  EXPECT_EQ(failure([&] { reader->read(0, Kind::Keys); }),
            path + ": the file changed after it was validated (its size changed from " +
                std::to_string(stale.size) + " to " + std::to_string(stale.size + 1) +
                " bytes); open it again");
}

TEST(Isolation, ValidatorIsFoundInThisBuild) {
  const std::string found = locateValidator();
  EXPECT_FALSE(found.empty());
  EXPECT_TRUE(std::filesystem::exists(found));
}

}  // namespace
}  // namespace kvq
