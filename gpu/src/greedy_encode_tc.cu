// Fused greedy RVQ encoding with tensor-core candidates and an exact fp32 re-rank: the same
// codes, residuals and energies as the exact kernel (greedy_encode.cu) and the CPU.
//
// Inputs : x [n, g] with g <= 32; the packed codebooks incl. the TF32 copy, -|c|^2/2 and
//          cMax (codebook_pack.cu); the candidate bound (kernel_math.h).
// Outputs: EncodeOutputs, as the exact kernel.
// Layout : 128 threads = 4 warps, a tile of 128 vectors; warp w owns vectors 32w..32w+31
//          as two 16-row MMA tiles and sweeps every entry. Shared: r [g][128] fp32, two
//          chunk buffers [8*KS][72] (TF32; rows >= g stay zero) and their -|c|^2/2.
// Search : per chunk and 8-entry column tile, mma.sync m16n8k8 TF32 with the accumulator
//          starting at -|c|^2/2, so acc = <r~, c~> - |c|^2/2 = -A/2. Each thread keeps its
//          two highest acc per vector row (TopScores); a row's four threads (a quad) see
//          disjoint entries. Per row: accMax over the quad, threshold accMax - B; a
//          thread whose kept list could have dropped an entry above the threshold, a
//          non-finite bound, or no finite candidate sends the vector to an exact search of
//          every entry by the whole block. Otherwise each thread re-ranks its candidates
//          above the threshold with the CPU's distance, and the quad takes the (distance,
//          index) minimum: the exact winner, ties to the lowest index. A zero residual takes
//          the stage's smallest-norm entry (its distances are exactly the norms), and an
//          entry identical to a lower one is never scored (it cannot win a tie).
#include <climits>

#include "cuda_check.h"
#include "encode_common.cuh"
#include "rvq_kernels.h"

namespace kvq::gpu {
namespace {

using detail::kTileShift;
using detail::kTileVectors;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kColumnTiles = kChunkEntries / 8;

// d = a * b + c on one 16x8x8 TF32 tile; fragments as in the PTX ISA (mma.m16n8k8, .tf32).
__device__ __forceinline__ void mmaTf32(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void offerPair(TopScores& top, float a, float b, int e) {
  if (fmaxf(a, b) > top.v[kCandidates - 1]) {  // rare after the first chunks: one compare for two
    top.offer(a, e);
    top.offer(b, e + 1);
  }
}

// The CPU's distance of residual row `row` (in rs) to entry e of the stage.
__device__ __forceinline__ float exactDistance(const float* rs, int row, const float* __restrict__ stageBook,
                                               const float* __restrict__ stageNorms, int e, int g) {
  const float* c = stageBook + static_cast<int64_t>(e) * g;
  float acc = stageNorms[e];
  for (int d = 0; d < g; ++d) acc = fmaF(-2.0f * rs[(d << kTileShift) + row], c[d], acc);
  return acc;
}

// A fragments of the warp's two row tiles: r rounded to TF32, zero past g.
template <int KS>
__device__ __forceinline__ void loadA(const float* rs, int g, int warp, int gid, int tig,
                                      uint32_t (&a)[2][KS][4]) {
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    const int row = warp * 32 + mt * 16 + gid;
#pragma unroll
    for (int s = 0; s < KS; ++s) {
      const int d0 = 8 * s + tig;
      const int d1 = d0 + 4;
      a[mt][s][0] = __float_as_uint(roundTf32(d0 < g ? rs[(d0 << kTileShift) + row] : 0.0f));
      a[mt][s][1] = __float_as_uint(roundTf32(d0 < g ? rs[(d0 << kTileShift) + row + 8] : 0.0f));
      a[mt][s][2] = __float_as_uint(roundTf32(d1 < g ? rs[(d1 << kTileShift) + row] : 0.0f));
      a[mt][s][3] = __float_as_uint(roundTf32(d1 < g ? rs[(d1 << kTileShift) + row + 8] : 0.0f));
    }
  }
}

template <int KS>
__device__ __forceinline__ void searchChunk(const float* cs, const float* cn, int e0, int gid, int tig,
                                            const uint32_t (&a)[2][KS][4], TopScores (&top)[2][2]) {
#pragma unroll
  for (int j = 0; j < kColumnTiles; ++j) {
    const float2 nh = *reinterpret_cast<const float2*>(cn + 8 * j + 2 * tig);
    uint32_t b[KS][2];
#pragma unroll
    for (int s = 0; s < KS; ++s) {
      b[s][0] = __float_as_uint(cs[(8 * s + tig) * kChunkStride + 8 * j + gid]);
      b[s][1] = __float_as_uint(cs[(8 * s + tig + 4) * kChunkStride + 8 * j + gid]);
    }
    const int e = e0 + 8 * j + 2 * tig;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      float c[4] = {nh.x, nh.y, nh.x, nh.y};
#pragma unroll
      for (int s = 0; s < KS; ++s) mmaTf32(c, a[mt][s], b[s][0], b[s][1]);
      offerPair(top[mt][0], c[0], c[1], e);
      offerPair(top[mt][1], c[2], c[3], e);
    }
  }
}

struct StageRefs {
  const float* book;    // [C, g] row-major
  const float* norms;   // [chunks*64]
  const float* packed;  // [chunks, g, 64] fp32
  float cMax;
  int zeroWinner;
};

// Decides one row from its quad's candidates, or queues it for the exact search.
__device__ __forceinline__ void decideRow(const TopScores& top, int row, bool valid, const float* rs,
                                          const float* rnorm, const StageRefs& st,
                                          const CandidateBound& bound, int g, int tig, int* chosen,
                                          int* fallback, int* fallbackCount) {
  float accMax = top.v[0];
  accMax = fmaxf(accMax, __shfl_xor_sync(0xffffffffu, accMax, 1));
  accMax = fmaxf(accMax, __shfl_xor_sync(0xffffffffu, accMax, 2));
  const float threshold = candidateThreshold(bound, rnorm[row], st.cMax, accMax);
  bool over = !isfinite(threshold) || top.mayHaveDropped(threshold);
  float bestD = kInfF;
  int bestI = INT_MAX;
  if (!over && valid) {
#pragma unroll
    for (int p = 0; p < kCandidates; ++p) {
      if (top.i[p] < 0 || !(top.v[p] >= threshold)) continue;
      const float d = exactDistance(rs, row, st.book, st.norms, top.i[p], g);
      if (pairBefore(d, top.i[p], bestD, bestI)) {
        bestD = d;
        bestI = top.i[p];
      }
    }
  }
#pragma unroll
  for (int offset = 1; offset <= 2; offset *= 2) {
    over = __shfl_xor_sync(0xffffffffu, static_cast<int>(over), offset) != 0 || over;
    const float od = __shfl_xor_sync(0xffffffffu, bestD, offset);
    const int oi = __shfl_xor_sync(0xffffffffu, bestI, offset);
    if (pairBefore(od, oi, bestD, bestI)) {
      bestD = od;
      bestI = oi;
    }
  }
  if (!(bestD < kInfF)) over = true;  // no finite candidate: let the exact search decide
  if (tig != 0) return;
  if (!valid) {
    chosen[row] = 0;
  } else if (rnorm[row] == 0.0f) {  // r = 0: every distance is |c|^2 exactly
    chosen[row] = st.zeroWinner;
  } else if (over) {
    fallback[atomicAdd(fallbackCount, 1)] = row;
  } else {
    chosen[row] = bestI;
  }
}

// Exact search of every entry for one row by the whole block: thread t scans entries
// t, t + 128, ... (strict <, from (+inf, 0) as the CPU's lanes), then a (distance, index)
// minimum over threads. Entries come from the packed fp32 layout (coalesced).
__device__ void exactSearchRow(const float* rs, int row, const StageRefs& st, int C, int g, float* redD,
                               int* redI, int* chosen) {
  float bestD = kInfF;
  int bestI = 0;
  for (int e = threadIdx.x; e < C; e += kThreads) {
    const float* c = st.packed + static_cast<int64_t>(e >> 6) * g * kChunkEntries + (e & (kChunkEntries - 1));
    float acc = st.norms[e];
    for (int d = 0; d < g; ++d) acc = fmaF(-2.0f * rs[(d << kTileShift) + row], c[d * kChunkEntries], acc);
    if (acc < bestD) {
      bestD = acc;
      bestI = e;
    }
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float od = __shfl_xor_sync(0xffffffffu, bestD, offset);
    const int oi = __shfl_xor_sync(0xffffffffu, bestI, offset);
    if (pairBefore(od, oi, bestD, bestI)) {
      bestD = od;
      bestI = oi;
    }
  }
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    redD[warp] = bestD;
    redI[warp] = bestI;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) {
      if (pairBefore(redD[w], redI[w], bestD, bestI)) {
        bestD = redD[w];
        bestI = redI[w];
      }
    }
    chosen[row] = bestI;
  }
  __syncthreads();
}

struct TcShared {
  float* rs;      // [g][128]
  float* cs;      // [2][8*KS][72]
  float* cn;      // [2][64]
  float* rnorm;   // [128]
  int* chosen;    // [128]
  int* fallback;  // [128]
  int* counter;   // [4] (first: fallback count)
  float* redD;    // [4]
  int* redI;      // [4]
};

__device__ __forceinline__ TcShared carve(float* smem, int g, int rows) {
  TcShared s{};
  s.rs = smem;
  s.cs = s.rs + g * kTileVectors;
  s.cn = s.cs + 2 * rows * kChunkStride;
  s.rnorm = s.cn + 2 * kChunkEntries;
  s.chosen = reinterpret_cast<int*>(s.rnorm + kTileVectors);
  s.fallback = s.chosen + kTileVectors;
  s.counter = s.fallback + kTileVectors;
  s.redD = reinterpret_cast<float*>(s.counter + 4);
  s.redI = reinterpret_cast<int*>(s.redD + kWarps);
  return s;
}

template <int KS>
__global__ void __launch_bounds__(kThreads)
    tcEncodeKernel(const float* __restrict__ x, int64_t n, detail::BooksView b, CandidateBound bound,
                   EncodeOutputs out) {
  extern __shared__ __align__(16) float smem[];
  constexpr int kRows = 8 * KS;
  const int g = b.g;
  const TcShared sh = carve(smem, g, kRows);
  const int t = threadIdx.x;
  const int warp = t >> 5;
  const int gid = (t & 31) >> 2;
  const int tig = t & 3;
  const int64_t v0 = static_cast<int64_t>(blockIdx.x) * kTileVectors;

  for (int i = t; i < 2 * kRows * kChunkStride; i += kThreads) sh.cs[i] = 0.0f;  // rows >= g stay 0
  detail::loadTile(x, n, v0, g, sh.rs, nullptr);
  __syncthreads();
  if (t < kTileVectors) {
    double e = 0.0;
    for (int d = 0; d < g; ++d) {
      const double r = sh.rs[(d << kTileShift) + t];
      e = addD(e, mulD(r, r));
    }
    sh.rnorm[t] = residualNorm(e);
  }

  for (int k = 0; k < b.K; ++k) {
    const int64_t stageEntries = static_cast<int64_t>(b.chunks) * kChunkEntries;
    const StageRefs st{b.rowMajor + static_cast<int64_t>(k) * b.C * g, b.norms + k * stageEntries,
                       b.packed + k * stageEntries * g, b.cMax[k], b.zeroWinner[k]};
    const float* stageTf = b.packedTf32 + k * stageEntries * g;
    const float* stageNh = b.negHalfNorms + k * stageEntries;
    __syncthreads();  // rs and rnorm complete
    if (t == 0) sh.counter[0] = 0;
    if (out.stageInputs != nullptr) detail::storeTile(sh.rs, n, v0, g, out.stageInputs + k * n * g);
    uint32_t a[2][KS][4];
    loadA<KS>(sh.rs, g, warp, gid, tig, a);
    TopScores top[2][2];

    detail::issueChunk(stageTf, stageNh, 0, g, sh.cs, sh.cn);
    detail::cpAsyncCommit();
    for (int c = 0; c < b.chunks; ++c) {
      const int buf = c & 1;
      if (c + 1 < b.chunks) {
        detail::issueChunk(stageTf, stageNh, c + 1, g, sh.cs + (buf ^ 1) * kRows * kChunkStride,
                           sh.cn + (buf ^ 1) * kChunkEntries);
      }
      detail::cpAsyncCommit();
      detail::cpAsyncWait<1>();
      __syncthreads();
      searchChunk<KS>(sh.cs + buf * kRows * kChunkStride, sh.cn + buf * kChunkEntries, c * kChunkEntries, gid,
                      tig, a, top);
      __syncthreads();
    }

#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = warp * 32 + mt * 16 + 8 * h + gid;
        decideRow(top[mt][h], row, v0 + row < n, sh.rs, sh.rnorm, st, bound, g, tig, sh.chosen, sh.fallback,
                  sh.counter);
      }
    }
    __syncthreads();
    const int fallbacks = sh.counter[0];
    if (t == 0 && out.fallbacks != nullptr && fallbacks > 0)
      atomicAdd(out.fallbacks, static_cast<unsigned long long>(fallbacks));
    for (int f = 0; f < fallbacks; ++f)
      exactSearchRow(sh.rs, sh.fallback[f], st, b.C, g, sh.redD, sh.redI, sh.chosen);

    detail::subtractChosen(st.book, sh.chosen, n, v0, g, sh.rs, nullptr);
    __syncthreads();
    const double e = detail::finishStage(sh.rs, sh.chosen, n, v0, g, k, out);
    if (t < kTileVectors) sh.rnorm[t] = residualNorm(e);
  }
  if (out.residual != nullptr) {
    __syncthreads();
    detail::storeTile(sh.rs, n, v0, g, out.residual);
  }
}

// One warp: D = A B + C for A [16x8] = ((3i + k) % 7) - 3, B [8x8] = ((5k + j) % 5) - 2,
// C [16x8] = i - j (small integers: exact in TF32 and fp32); D in row-major [16x8].
__global__ void layoutProbeKernel(float* d) {
  const int lane = threadIdx.x;
  const int gid = lane >> 2;
  const int tig = lane & 3;
  auto av = [](int i, int k) { return static_cast<float>((3 * i + k) % 7 - 3); };
  auto bv = [](int k, int j) { return static_cast<float>((5 * k + j) % 5 - 2); };
  const uint32_t a[4] = {__float_as_uint(av(gid, tig)), __float_as_uint(av(gid + 8, tig)),
                         __float_as_uint(av(gid, tig + 4)), __float_as_uint(av(gid + 8, tig + 4))};
  float c[4] = {static_cast<float>(gid - 2 * tig), static_cast<float>(gid - 2 * tig - 1),
                static_cast<float>(gid + 8 - 2 * tig), static_cast<float>(gid + 8 - 2 * tig - 1)};
  mmaTf32(c, a, __float_as_uint(bv(tig, gid)), __float_as_uint(bv(tig + 4, gid)));
  d[gid * 8 + 2 * tig] = c[0];
  d[gid * 8 + 2 * tig + 1] = c[1];
  d[(gid + 8) * 8 + 2 * tig] = c[2];
  d[(gid + 8) * 8 + 2 * tig + 1] = c[3];
}

template <int KS>
size_t sharedBytesFor(int g) {
  return sizeof(float) * (static_cast<size_t>(g) * kTileVectors + 2 * 8 * KS * kChunkStride +
                          2 * kChunkEntries + kTileVectors) +
         sizeof(int) * (2 * kTileVectors + 4) + (sizeof(float) + sizeof(int)) * kWarps;
}

template <int KS>
void launchFor(const float* x, int64_t n, const detail::BooksView& books, const CandidateBound& bound,
               const EncodeOutputs& out, cudaStream_t stream) {
  const auto blocks = static_cast<unsigned>((n + kTileVectors - 1) / kTileVectors);
  tcEncodeKernel<KS><<<blocks, kThreads, sharedBytesFor<KS>(books.g), stream>>>(x, n, books, bound, out);
  KVQ_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

namespace detail {

size_t tensorCoreSharedBytes(int g) {
  switch ((g + 7) / 8) {
    case 1:
      return sharedBytesFor<1>(g);
    case 2:
      return sharedBytesFor<2>(g);
    case 3:
      return sharedBytesFor<3>(g);
    default:
      return sharedBytesFor<4>(g);
  }
}

void setTensorCoreSharedLimit(size_t bytes) {
  const int limit = static_cast<int>(bytes);
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(tcEncodeKernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(tcEncodeKernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(tcEncodeKernel<3>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  KVQ_CUDA_CHECK(cudaFuncSetAttribute(tcEncodeKernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
}

void launchTensorCoreEncode(const float* x, int64_t n, const BooksView& books, const CandidateBound& bound,
                            const EncodeOutputs& out, cudaStream_t stream) {
  if (books.g > kMaxTensorCoreDim || books.packedTf32 == nullptr)
    throw Error(ErrorKind::Internal, "", "tensor-core encode", "needs g <= 32 and the TF32 codebook copy");
  switch ((books.g + 7) / 8) {
    case 1:
      launchFor<1>(x, n, books, bound, out, stream);
      return;
    case 2:
      launchFor<2>(x, n, books, bound, out, stream);
      return;
    case 3:
      launchFor<3>(x, n, books, bound, out, stream);
      return;
    default:
      launchFor<4>(x, n, books, bound, out, stream);
  }
}

}  // namespace detail

int tensorCoreLayoutErrors() {
  DeviceBuffer<float> d(16 * 8);
  layoutProbeKernel<<<1, 32>>>(d.get());
  KVQ_CUDA_CHECK(cudaGetLastError());
  KVQ_CUDA_CHECK(cudaDeviceSynchronize());
  float host[16 * 8];
  d.download(host, 16 * 8);
  int wrong = 0;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      float want = static_cast<float>(i - j);
      for (int k = 0; k < 8; ++k)
        want += static_cast<float>((3 * i + k) % 7 - 3) * static_cast<float>((5 * k + j) % 5 - 2);
      wrong += host[i * 8 + j] != want ? 1 : 0;
    }
  }
  return wrong;
}

}  // namespace kvq::gpu
