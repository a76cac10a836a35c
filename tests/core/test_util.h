// Helpers shared by the core tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kvq/dump/dump.h"
#include "kvq/dump/dump_writer.h"

namespace kvq::test {

// A fresh, empty directory under KVQ_TEST_TMPDIR (defined by tests/CMakeLists.txt),
// named after the running test plus a process-unique counter, so parallel ctest
// runs and repeated calls never collide. Left on disk for inspection after a run.
inline std::filesystem::path freshTempDir(const std::string& tag = "") {
  static std::atomic<int> counter{0};
  std::string name = "tmp";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    name = std::string(info->test_suite_name()) + "." + info->name();
  }
  for (char& c : name) {
    if (c == '/') c = '_';  // parameterized test names
  }
  // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string&&.
  if (!tag.empty()) name.append("-").append(tag);
  name.append("-").append(std::to_string(::getpid())).append("-").append(std::to_string(counter++));
  const std::filesystem::path dir = std::filesystem::path(KVQ_TEST_TMPDIR) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A slab [tokens, heads, dim] holding `data` (row-major), tokenBegin 0.
inline Slab slabOf(int64_t tokens, int heads, int dim, std::vector<float> data) {
  Slab s;
  s.tokens = tokens;
  s.heads = heads;
  s.dim = dim;
  s.data = std::move(data);
  return s;
}

// n draws of N(0, 1), the same for the same seed.
inline std::vector<float> normals(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The header of a test dump: model name, shape and storage type (the writer's defaults for the rest:
// gzip and checksums on, no queries).
inline DumpHeader dumpHeader(std::string model, int layers, int kvHeads, int headDim, int64_t tokens,
                             DType dtype = DType::Float32) {
  DumpHeader h;
  h.model = std::move(model);
  h.numLayers = layers;
  h.numKvHeads = kvHeads;
  h.headDim = headDim;
  h.tokens = tokens;
  h.dtype = dtype;
  return h;
}

}  // namespace kvq::test
