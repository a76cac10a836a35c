// A study over several ranks (threads here, processes under MPI: tests/mpi): the job
// plan, the collectives, the result messages, bit-identity with one process for
// solo and shared (data-parallel) groups, and failures that stop every rank with the
// failing rank's error instead of leaving any waiting.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvq/base/error.h"
#include "kvq/dist/distributed_study.h"
#include "kvq/dist/result_codec.h"
#include "kvq/dist/sharded_backend.h"
#include "kvq/dist/thread_communicator.h"
#include "kvq/dump/dump_reader.h"
#include "kvq/dump/synth.h"
#include "kvq/rvq/backend_registry.h"
#include "kvq/rvq/cpu_backend.h"
#include "quick_training.h"
#include "synth_dump.h"
#include "test_util.h"

namespace kvq {
namespace {

// Runs body(rank, communicator) on `ranks` threads and waits for all.
void onRanks(int ranks, const std::function<void(int, Communicator&)>& body) {
  std::vector<std::unique_ptr<Communicator>> comms = makeThreadCommunicators(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) threads.emplace_back([&, r] { body(r, *comms[static_cast<size_t>(r)]); });
  for (std::thread& t : threads) t.join();
}

TEST(DistributedPlan, JobsAndGroups) {
  // 4 jobs, 3 ranks: 3 solo groups; rank 0 trains jobs 0 and 3; everyone takes 2 rounds.
  JobPlan p = planJobs(4, 3, 0);
  EXPECT_EQ(p.groups, 3);
  EXPECT_EQ(p.group, 0);
  EXPECT_EQ(p.jobs, (std::vector<int>{0, 3}));
  EXPECT_EQ(p.rounds, 2);
  EXPECT_EQ(planJobs(4, 3, 2).jobs, (std::vector<int>{2}));
  // 2 jobs, 5 ranks: 2 groups (ranks 0, 2, 4 and ranks 1, 3); rank 3 shares job 1.
  p = planJobs(2, 5, 3);
  EXPECT_EQ(p.groups, 2);
  EXPECT_EQ(p.group, 1);
  EXPECT_EQ(p.jobs, (std::vector<int>{1}));
  EXPECT_EQ(p.rounds, 1);
  EXPECT_EQ(planJobs(1, 1, 0).jobs, (std::vector<int>{0}));
}

TEST(ThreadCommunicator, CollectivesCombineInRankOrder) {
  onRanks(3, [](int rank, Communicator& comm) {
    EXPECT_EQ(comm.rank(), rank);
    EXPECT_EQ(comm.size(), 3);
    // Uneven blocks: rank r contributes r + 1 values r*10, r*10+1, ...
    const std::vector<int64_t> bytes{4, 8, 12};
    std::vector<int32_t> all(6, -1);
    const int offset[] = {0, 1, 3};
    for (int i = 0; i <= rank; ++i) all[static_cast<size_t>(offset[rank] + i)] = rank * 10 + i;
    comm.allGather(all.data() + offset[rank], all.data(), bytes);  // the own block in place
    EXPECT_EQ(all, (std::vector<int32_t>{0, 10, 11, 20, 21, 22}));
    EXPECT_EQ(comm.allReduceMax(rank == 1 ? 7 : 2), 7);
    const std::vector<std::string> gathered = comm.gatherToRoot(std::string(static_cast<size_t>(rank), 'x'));
    if (rank == 0) {
      EXPECT_EQ(gathered, (std::vector<std::string>{"", "x", "xx"}));
    } else {
      EXPECT_TRUE(gathered.empty());
    }
    EXPECT_EQ(comm.broadcastFromRoot(rank == 0 ? "from 0" : "ignored"), "from 0");
    // Ranks 0 and 2 (color 0, key reversed: rank 2 first) and rank 1 alone.
    const std::unique_ptr<Communicator> sub = comm.split(rank % 2, -rank);
    EXPECT_EQ(sub->size(), rank == 1 ? 1 : 2);
    EXPECT_EQ(sub->rank(), rank == 2 || rank == 1 ? 0 : 1);
    EXPECT_EQ(sub->allReduceMax(rank), rank == 1 ? 1 : 2);
  });
}

// Small synthetic dumps shared by the tests below.
class DistributedStudy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_dir = new std::string(test::freshTempDir("distributed").string());
    test::writeSynthDumpOf(*s_dir + "/synth.h5", 3, 2, 32, 512, 11);
  }
  static void TearDownTestSuite() {
    delete s_dir;
    s_dir = nullptr;
  }
  static std::string path() { return *s_dir + "/synth.h5"; }
  static StudyOptions options() {
    StudyOptions o;
    o.config = test::quickTraining(presetConfig("fast"), 64, 3, 8, 2000, 6, 500);
    o.config.kmeansIterations = 3;
    o.config.seed = 5;
    o.chunkTokens = 100;  // several evaluation chunks
    return o;
  }
  // The study on `ranks` threads; rank 0's result. backendFor(rank, cpu) may wrap the backend.
  static StudyResult distributed(int ranks, const StudyOptions& o,
                                 const std::function<std::unique_ptr<Backend>(int, Backend&)>& wrap = {}) {
    std::optional<StudyResult> root;
    onRanks(ranks, [&](int rank, Communicator& world) {
      const auto reader = DumpReader::open(path());  // each rank opens the dump itself
      const auto cpu = makeCpuBackend(1);
      const std::unique_ptr<Backend> wrapped = wrap ? wrap(rank, *cpu) : nullptr;
      StudyResult r = runStudyDistributed(*reader, o, wrapped ? *wrapped : *cpu, world);
      if (rank == 0)
        root = std::move(r);
      else
        EXPECT_TRUE(r.jobs.empty());
    });
    return std::move(*root);
  }
  static std::string* s_dir;
};
std::string* DistributedStudy::s_dir = nullptr;

bool sameSums(const ErrorSums& a, const ErrorSums& b) {
  return a.errorEnergy == b.errorEnergy && a.signalEnergy == b.signalEnergy && a.cosineSum == b.cosineSum &&
         a.vectors == b.vectors;
}

// Every number a job reports, compared exactly (timings aside).
void expectSameJobs(const StudyResult& a, const StudyResult& b) {
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (size_t j = 0; j < a.jobs.size(); ++j) {
    const LayerKindResult& x = a.jobs[j];
    const LayerKindResult& y = b.jobs[j];
    SCOPED_TRACE("job " + std::to_string(j));
    EXPECT_EQ(x.layer, y.layer);
    EXPECT_EQ(x.kind, y.kind);
    ASSERT_EQ(x.quantizers.size(), y.quantizers.size());
    for (size_t q = 0; q < x.quantizers.size(); ++q) {
      const std::vector<float>& cx = x.quantizers[q].codebooks.data;
      const std::vector<float>& cy = y.quantizers[q].codebooks.data;
      ASSERT_EQ(cx.size(), cy.size());
      EXPECT_EQ(std::memcmp(cx.data(), cy.data(), cx.size() * sizeof(float)), 0) << "codebooks differ";
      EXPECT_EQ(x.quantizers[q].train.stageErrorAfterEma, y.quantizers[q].train.stageErrorAfterEma);
      ASSERT_EQ(x.quantizers[q].usage.size(), y.quantizers[q].usage.size());
      for (size_t k = 0; k < x.quantizers[q].usage.size(); ++k)
        EXPECT_EQ(x.quantizers[q].usage[k].histogram, y.quantizers[q].usage[k].histogram);
    }
    ASSERT_EQ(x.byDepth.size(), y.byDepth.size());
    for (size_t k = 0; k < x.byDepth.size(); ++k) EXPECT_TRUE(sameSums(x.byDepth[k], y.byDepth[k]));
    ASSERT_EQ(x.baselines.size(), y.baselines.size());
    for (size_t i = 0; i < x.baselines.size(); ++i)
      EXPECT_TRUE(sameSums(x.baselines[i].error, y.baselines[i].error));
  }
}

TEST_F(DistributedStudy, ResultMessageRoundTrips) {
  const auto reader = DumpReader::open(path());
  const auto cpu = makeCpuBackend(1);
  StudyOptions o = options();
  o.config.perHead = true;  // several quantizers per job
  const StudyResult study = runStudy(*reader, o, *cpu);
  StudyResult copy = study;
  for (size_t j = 0; j < study.jobs.size(); ++j)
    copy.jobs[j] = decodeJobResult(encodeJobResult(study.jobs[j]));
  expectSameJobs(study, copy);
  const LayerKindResult& a = study.jobs[1];
  const LayerKindResult& b = copy.jobs[1];
  EXPECT_EQ(a.channelOrder, b.channelOrder);
  EXPECT_EQ(a.grouping, b.grouping);
  EXPECT_EQ(a.quantizers[1].head, b.quantizers[1].head);
  EXPECT_EQ(a.quantizers[1].trainVectors, b.quantizers[1].trainVectors);
  EXPECT_EQ(a.quantizers[1].train.reseeded, b.quantizers[1].train.reseeded);
  EXPECT_EQ(a.quantizers[1].usage[2].perplexity, b.quantizers[1].usage[2].perplexity);
  EXPECT_EQ(a.perHeadByDepth.size(), b.perHeadByDepth.size());
  EXPECT_TRUE(sameSums(a.perHeadByDepth[1][2], b.perHeadByDepth[1][2]));
  EXPECT_EQ(a.amortisedBitsPerChannel, b.amortisedBitsPerChannel);
  EXPECT_EQ(a.evalVectors, b.evalVectors);
  EXPECT_EQ(a.evalSeconds, b.evalSeconds);
  // Damaged messages are refused, not misread.
  std::string bytes = encodeJobResult(a);
  EXPECT_THROW(decodeJobResult(bytes.substr(0, bytes.size() - 3)), Error);
  EXPECT_THROW(decodeJobResult(bytes + "x"), Error);
  bytes[0] ^= 1;
  EXPECT_THROW(decodeJobResult(bytes), Error);
}

TEST_F(DistributedStudy, BitIdenticalToOneProcessForAnyRankCount) {
  const auto reader = DumpReader::open(path());
  const auto cpu = makeCpuBackend(2);  // other threads than the ranks' backends: the same numbers
  const StudyResult single = runStudy(*reader, options(), *cpu);
  ASSERT_EQ(single.jobs.size(), 6u);
  // 2 and 4 ranks: solo groups, jobs dealt round-robin.
  for (int ranks : {2, 4}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const StudyResult many = distributed(ranks, options());
    expectSameJobs(single, many);
    EXPECT_EQ(many.split.trainTokens, single.split.trainTokens);
    EXPECT_NE(many.backendName.find("on " + std::to_string(ranks) + " ranks"), std::string::npos);
  }
}

TEST_F(DistributedStudy, SharedGroupsAreBitIdenticalToo) {
  // One layer and kind per job, more ranks than jobs: 2 jobs on 5 ranks = a group of
  // 3 and a group of 2 that split every search (data parallel), per-head quantizers too.
  StudyOptions o = options();
  o.layers = {1};
  for (bool perHead : {false, true}) {
    o.config.perHead = perHead;
    SCOPED_TRACE(perHead ? "per head" : "shared");
    const auto reader = DumpReader::open(path());
    const auto cpu = makeCpuBackend(1);
    const StudyResult single = runStudy(*reader, o, *cpu);
    expectSameJobs(single, distributed(5, o));
  }
  // Beam encoding goes through the shared path as well.
  o.config.perHead = false;
  o.config.beamWidth = 3;
  const auto reader = DumpReader::open(path());
  const auto cpu = makeCpuBackend(1);
  expectSameJobs(runStudy(*reader, o, *cpu), distributed(3, o));
}

// A backend that fails on its n-th nearest search (a rank's disk or memory gone).
class FailingBackend final : public Backend {
 public:
  FailingBackend(Backend& inner, int failAt) : m_inner(inner), m_failAt(failAt) {}
  std::string name() const override { return m_inner.name(); }
  void nearest(const float* x, int64_t n, const float* cb, int C, int g, int32_t* codes,
               float* dist) override {
    if (++m_calls == m_failAt) throwBadInput("disk.h5", "/layers/1/keys", "read failed");
    m_inner.nearest(x, n, cb, C, g, codes, dist);
  }
  void encodeGreedy(const float* x, int64_t n, const Codebooks& b, int32_t* c, double* e, float* r) override {
    m_inner.encodeGreedy(x, n, b, c, e, r);
  }
  void encodeBeam(const float* x, int64_t n, const Codebooks& b, int w, int32_t* c, double* e,
                  float* r) override {
    m_inner.encodeBeam(x, n, b, w, c, e, r);
  }
  void accumulate(const float* x, int64_t n, int g, const int32_t* c, int C, double* k, double* s) override {
    m_inner.accumulate(x, n, g, c, C, k, s);
  }

 private:
  Backend& m_inner;
  int m_failAt;
  int m_calls = 0;
};

// Runs the study on `ranks` threads with rank `failing` failing as set up; every rank
// must return (no rank left waiting) by throwing the failing rank's error.
void expectAllFailWith(int ranks, const StudyOptions& o, const std::string& path,
                       const std::function<std::unique_ptr<Backend>(int, Backend&)>& wrap,
                       const DistributedOptions& distributed, const std::string& expected) {
  std::atomic<int> failed{0};
  onRanks(ranks, [&](int, Communicator& world) {
    const auto reader = DumpReader::open(path);
    const auto cpu = makeCpuBackend(1);
    const std::unique_ptr<Backend> wrapped = wrap ? wrap(world.rank(), *cpu) : nullptr;
    try {
      runStudyDistributed(*reader, o, wrapped ? *wrapped : *cpu, world, nullptr, distributed);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
      ++failed;
    }
  });
  EXPECT_EQ(failed.load(), ranks);
}

TEST_F(DistributedStudy, FailureBeforeTrainingStopsEveryRank) {
  DistributedOptions d;
  d.prepare = [](const std::vector<std::pair<int, Kind>>& jobs) {
    for (const auto& [layer, kind] : jobs) {
      if (layer == 1 && kind == Kind::Keys) throwBadInput("synth.h5", "/layers/1/keys", "NaN at token 3");
    }
  };
  // 3 ranks, 3 jobs (keys of layers 0, 1, 2): rank r reads layer r; rank 1 fails.
  StudyOptions o = options();
  o.kinds = {Kind::Keys};
  expectAllFailWith(3, o, path(), {}, d, "synth.h5: /layers/1/keys: NaN at token 3 (rank 1 of 3)");
}

TEST_F(DistributedStudy, FailureInsideSoloAndSharedTrainingStopsEveryRank) {
  // Solo groups: rank 1 fails in its first job; the others finish theirs and stop.
  auto failOn = [](int who, int at) {
    return [who, at](int rank, Backend& inner) -> std::unique_ptr<Backend> {
      return rank == who ? std::make_unique<FailingBackend>(inner, at) : nullptr;
    };
  };
  expectAllFailWith(2, options(), path(), failOn(1, 5), {}, "read failed (rank 1 of 2)");
  // A shared group: rank 2 of 3 ranks on one job fails in the middle of the searches
  // while the others wait in a collective.
  StudyOptions one = options();
  one.layers = {0};
  one.kinds = {Kind::Values};
  expectAllFailWith(3, one, path(), failOn(2, 9), {}, "read failed (rank 2 of 3)");
  // Every rank of the group fails at the same search (a bad sample everywhere).
  expectAllFailWith(
      3, one, path(),
      [](int, Backend& inner) -> std::unique_ptr<Backend> {
        return std::make_unique<FailingBackend>(inner, 4);
      },
      {}, "read failed (rank 0 of 3)");
}

TEST_F(DistributedStudy, OneRankIsTheSingleProcess) {
  const auto reader = DumpReader::open(path());
  const auto cpu = makeCpuBackend(1);
  auto solo = makeSoloCommunicator();
  expectSameJobs(runStudy(*reader, options(), *cpu), runStudyDistributed(*reader, options(), *cpu, *solo));
}

// mpirun -n N kvq train --backend cuda: the node-local rank picks the GPU.
TEST(RankDevices, NodeLocalRanksSpreadOverTheGpusAndShareThemInTurn) {
  // 4 ranks on a node with 2 GPUs: 0 1 0 1; 3 ranks with 4 GPUs: 0 1 2 (GPU 3 idle).
  EXPECT_EQ((std::vector<int>{gpuDeviceForSlot(0, 2), gpuDeviceForSlot(1, 2), gpuDeviceForSlot(2, 2),
                              gpuDeviceForSlot(3, 2)}),
            (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ((std::vector<int>{gpuDeviceForSlot(0, 4), gpuDeviceForSlot(1, 4), gpuDeviceForSlot(2, 4)}),
            (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(gpuDeviceForSlot(7, 3), 1);
  EXPECT_EQ(gpuDeviceForSlot(5, 1), 0);
  EXPECT_EQ(gpuDeviceForSlot(3, 0), 0);   // no device: the factory then says so itself
  EXPECT_EQ(gpuDeviceForSlot(-1, 2), 0);  // not under MPI
}

// The slot reaches the GPU factory through makeBackend ("cuda" and "auto").
TEST(RankDevices, TheSlotReachesTheGpuFactory) {
  std::vector<int> slots;
  registerGpuBackendFactory([&](const GpuBackendRequest& request) -> std::unique_ptr<Backend> {
    slots.push_back(request.deviceSlot);
    throw Error(ErrorKind::Resource, "", "backend", "no GPU in this test");
  });
  BackendOptions options;
  options.cpuThreads = 1;
  options.gpuSlot = 3;
  EXPECT_THROW(makeBackend("cuda", options), Error);
  options.gpuSlot = 1;
  EXPECT_NE(makeBackend("auto", options), nullptr);  // the CPU, after the factory refused
  registerGpuBackendFactory({});
  EXPECT_EQ(slots, (std::vector<int>{3, 1}));
}

}  // namespace
}  // namespace kvq
