#include <gtest/gtest.h>

#include <vector>

#include "kvq/base/error.h"
#include "kvq/rvq/cpu_backend.h"
#include "kvq/rvq/encoder.h"
#include "kvq/rvq/trainer.h"

namespace kvq {
namespace {

TEST(Encoder, DecodeSumsTheChosenEntries) {
  // K = 2, C = 2, g = 2.
  Codebooks books(2, 2, 2);
  books.data = {1,    2, 3, 4,    // stage 0: (1,2), (3,4)
                0.5f, 0, 0, -1};  // stage 1: (0.5,0), (0,-1)
  const int32_t codes[4] = {1, 0, 0, 1};
  float out[4];
  decodeRvq(codes, 2, books, 2, out);
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{3.5f, 4, 1, 1}));
  decodeRvq(codes, 2, books, 1, out);
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{3, 4, 1, 2}));
  decodeRvq(codes, 2, books, 0, out);
  EXPECT_EQ(std::vector<float>(out, out + 4), (std::vector<float>{0, 0, 0, 0}));
  const int32_t bad[4] = {1, 0, 0, 7};
  EXPECT_THROW(decodeRvq(bad, 2, books, 2, out), Error);
}

TEST(Encoder, EncodeUsesTheConfiguredMethod) {
  Codebooks books(2, 3, 1);
  books.data = {0, 1, 10,   // stage 0
                0, 4, -4};  // stage 1
  // x = 5: greedy takes 1 (residual 4) then 4 (residual 0): exact.
  // x = 7: greedy takes 10 (residual -3) then -4 (residual 1).
  const float x[2] = {5, 7};
  auto backend = makeCpuBackend();
  RvqConfig config;
  int32_t codes[4];
  double err[2] = {0, 0};
  encodeRvq(x, 2, books, config, *backend, codes, err);
  EXPECT_EQ(std::vector<int32_t>(codes, codes + 4), (std::vector<int32_t>{1, 1, 2, 2}));
  EXPECT_DOUBLE_EQ(err[0], 16.0 + 9.0);
  EXPECT_DOUBLE_EQ(err[1], 0.0 + 1.0);
  // y = 8.5 with beam 2: paths 10 (-1.5) and 1 (7.5); their best extensions are
  // 10 then 0 (2.25) and 1 then 4 (12.25): the beam agrees with greedy here.
  config.beamWidth = 2;
  const float y[1] = {8.5f};
  int32_t c2[2];
  double e2[2] = {0, 0};
  encodeRvq(y, 1, books, config, *backend, c2, e2);
  EXPECT_EQ(c2[0], 2);
  EXPECT_EQ(c2[1], 0);
  EXPECT_DOUBLE_EQ(e2[1], 2.25);
}

TEST(Encoder, BeamFindsWhatGreedyMisses) {
  // g = 1. Stage 0: {0, 3}; stage 1: {0, 2.5}. x = 2.6:
  // greedy: 3 (residual -0.4) then 0 -> 0.16; beam 2 keeps 0 (2.6) then 2.5 -> 0.01.
  Codebooks books(2, 2, 1);
  books.data = {0, 3, 0, 2.5f};
  const float x[1] = {2.6f};
  auto backend = makeCpuBackend();
  RvqConfig config;
  int32_t codes[2];
  double err[2] = {0, 0};
  encodeRvq(x, 1, books, config, *backend, codes, err);
  EXPECT_EQ(codes[0], 1);
  EXPECT_EQ(codes[1], 0);
  config.beamWidth = 2;
  double beamErr[2] = {0, 0};
  encodeRvq(x, 1, books, config, *backend, codes, beamErr);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 1);
  EXPECT_NEAR(beamErr[1], 0.01, 1e-6);
  EXPECT_NEAR(err[1], 0.16, 1e-6);
  // depthError of the chosen path: after stage 1 it is 2.6^2.
  EXPECT_NEAR(beamErr[0], 2.6 * 2.6, 1e-5);
}

}  // namespace
}  // namespace kvq
