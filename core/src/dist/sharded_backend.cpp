#include "kvq/dist/sharded_backend.h"

#include <string>
#include <vector>

namespace kvq {
namespace {

// Vectors [begin, end) of one rank's block.
struct Block {
  int64_t begin = 0;
  int64_t end = 0;
};

Block blockOf(int64_t n, int rank, int size) {
  return {n * rank / size, n * (rank + 1) / size};
}

class ShardedBackend final : public Backend {
 public:
  ShardedBackend(Backend& inner, Communicator& group) : m_inner(inner), m_group(group) {}

  std::string name() const override { return m_inner.name(); }

  void nearest(const float* x, int64_t n, const float* codebook, int C, int g, int32_t* codes,
               float* dist) override {
    const Block b = mine(n);
    m_inner.nearest(x + b.begin * g, b.end - b.begin, codebook, C, g, codes + b.begin,
                    dist != nullptr ? dist + b.begin : nullptr);
    const std::vector<int64_t> codeBytes = blockBytes(n, sizeof(int32_t));
    const std::vector<int64_t> distBytes = blockBytes(n, sizeof(float));
    checkPeers(m_group);  // after everything that may fail here
    gather(codes, codeBytes);
    if (dist != nullptr) gather(dist, distBytes);
  }

  void encodeGreedy(const float* x, int64_t n, const Codebooks& books, int32_t* codes, double* depthError,
                    float* residual) override {
    if (depthError != nullptr) {  // the error sum's order is the single process's: whole, here
      m_inner.encodeGreedy(x, n, books, codes, depthError, residual);
      return;
    }
    const Block b = mine(n);
    m_inner.encodeGreedy(x + b.begin * books.dim, b.end - b.begin, books, codes + b.begin * books.depth,
                         nullptr, residual != nullptr ? residual + b.begin * books.dim : nullptr);
    gatherEncoding(n, books, codes, residual);
  }

  void encodeBeam(const float* x, int64_t n, const Codebooks& books, int beam, int32_t* codes,
                  double* depthError, float* residual) override {
    if (depthError != nullptr) {
      m_inner.encodeBeam(x, n, books, beam, codes, depthError, residual);
      return;
    }
    const Block b = mine(n);
    m_inner.encodeBeam(x + b.begin * books.dim, b.end - b.begin, books, beam, codes + b.begin * books.depth,
                       nullptr, residual != nullptr ? residual + b.begin * books.dim : nullptr);
    gatherEncoding(n, books, codes, residual);
  }

  void accumulate(const float* x, int64_t n, int g, const int32_t* codes, int C, double* counts,
                  double* sums) override {
    m_inner.accumulate(x, n, g, codes, C, counts, sums);
  }

 private:
  Block mine(int64_t n) const { return blockOf(n, m_group.rank(), m_group.size()); }

  // Bytes of every rank's block of n rows of rowBytes.
  std::vector<int64_t> blockBytes(int64_t n, int64_t rowBytes) const {
    std::vector<int64_t> bytes(static_cast<size_t>(m_group.size()));
    for (int r = 0; r < m_group.size(); ++r) {
      const Block b = blockOf(n, r, m_group.size());
      bytes[static_cast<size_t>(r)] = (b.end - b.begin) * rowBytes;
    }
    return bytes;
  }

  // Gathers the rows of every rank's block of data in place (the own block is where
  // the inner backend wrote it).
  void gather(void* data, const std::vector<int64_t>& bytes) {
    int64_t offset = 0;
    for (int r = 0; r < m_group.rank(); ++r) offset += bytes[static_cast<size_t>(r)];
    m_group.allGather(static_cast<char*>(data) + offset, data, bytes);
  }

  void gatherEncoding(int64_t n, const Codebooks& books, int32_t* codes, float* residual) {
    const std::vector<int64_t> codeBytes =
        blockBytes(n, static_cast<int64_t>(books.depth) * static_cast<int64_t>(sizeof(int32_t)));
    const std::vector<int64_t> residualBytes =
        blockBytes(n, static_cast<int64_t>(books.dim) * static_cast<int64_t>(sizeof(float)));
    checkPeers(m_group);
    gather(codes, codeBytes);
    if (residual != nullptr) gather(residual, residualBytes);
  }

  Backend& m_inner;
  Communicator& m_group;
};

}  // namespace

std::unique_ptr<Backend> makeShardedBackend(Backend& inner, Communicator& group) {
  return std::make_unique<ShardedBackend>(inner, group);
}

void reportFailure(Communicator& group) {
  group.allReduceMax(1);
}

void checkPeers(Communicator& group) {
  if (group.allReduceMax(0) != 0) throw PeerFailed();
}

}  // namespace kvq
