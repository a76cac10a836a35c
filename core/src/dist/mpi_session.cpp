#include "kvq/dist/mpi_session.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvq/base/error.h"

namespace kvq::mpi {
namespace {

// Point-to-point messages and broadcasts go in pieces of at most this many bytes
// (MPI counts are int).
constexpr int64_t kPiece = int64_t{1} << 30;
constexpr int kGatherTag = 7;

int toCount(int64_t bytes, const char* what) {
  if (bytes < 0 || bytes > INT_MAX)
    throwInternal(what, std::to_string(bytes) + " bytes exceed one MPI message");
  return static_cast<int>(bytes);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : m_comm(comm), m_owned(owned) {
    MPI_Comm_rank(m_comm, &m_rank);
    MPI_Comm_size(m_comm, &m_size);
  }
  ~MpiCommunicator() override {
    if (m_owned) MPI_Comm_free(&m_comm);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return m_rank; }
  int size() const override { return m_size; }

  void allGather(const void* mine, void* all, const std::vector<int64_t>& bytes) override {
    std::vector<int> counts(static_cast<size_t>(m_size));
    std::vector<int> offsets(static_cast<size_t>(m_size));
    int64_t offset = 0;
    for (int r = 0; r < m_size; ++r) {
      counts[static_cast<size_t>(r)] = toCount(bytes[static_cast<size_t>(r)], "allGather");
      offsets[static_cast<size_t>(r)] = toCount(offset, "allGather");
      offset += bytes[static_cast<size_t>(r)];
    }
    toCount(offset, "allGather");
    auto* out = static_cast<char*>(all);
    // The own block already in place: MPI_IN_PLACE, no copy.
    const bool inPlace = mine == out + offsets[static_cast<size_t>(m_rank)];
    MPI_Allgatherv(inPlace ? MPI_IN_PLACE : mine, counts[static_cast<size_t>(m_rank)], MPI_BYTE, out,
                   counts.data(), offsets.data(), MPI_BYTE, m_comm);
  }

  int64_t allReduceMax(int64_t value) override {
    int64_t result = 0;
    MPI_Allreduce(&value, &result, 1, MPI_INT64_T, MPI_MAX, m_comm);
    return result;
  }

  std::vector<std::string> gatherToRoot(const std::string& mine) override {
    int64_t size = static_cast<int64_t>(mine.size());
    std::vector<int64_t> sizes(static_cast<size_t>(m_size));
    MPI_Gather(&size, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, 0, m_comm);
    if (m_rank != 0) {
      for (int64_t done = 0; done < size; done += kPiece) {
        MPI_Send(mine.data() + done, static_cast<int>(std::min(kPiece, size - done)), MPI_BYTE, 0, kGatherTag,
                 m_comm);
      }
      return {};
    }
    std::vector<std::string> all{mine};
    for (int r = 1; r < m_size; ++r) {
      std::string& s = all.emplace_back(static_cast<size_t>(sizes[static_cast<size_t>(r)]), '\0');
      for (int64_t done = 0; done < static_cast<int64_t>(s.size()); done += kPiece) {
        MPI_Recv(s.data() + done, static_cast<int>(std::min(kPiece, static_cast<int64_t>(s.size()) - done)),
                 MPI_BYTE, r, kGatherTag, m_comm, MPI_STATUS_IGNORE);
      }
    }
    return all;
  }

  std::string broadcastFromRoot(const std::string& data) override {
    int64_t size = m_rank == 0 ? static_cast<int64_t>(data.size()) : 0;
    MPI_Bcast(&size, 1, MPI_INT64_T, 0, m_comm);
    std::string result = m_rank == 0 ? data : std::string(static_cast<size_t>(size), '\0');
    for (int64_t done = 0; done < size; done += kPiece)
      MPI_Bcast(result.data() + done, static_cast<int>(std::min(kPiece, size - done)), MPI_BYTE, 0, m_comm);
    return result;
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    MPI_Comm_split(m_comm, color, key, &sub);
    return std::make_unique<MpiCommunicator>(sub, true);
  }

 private:
  MPI_Comm m_comm;
  bool m_owned;
  int m_rank = 0;
  int m_size = 1;
};

}  // namespace

bool launchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

Session::Session() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
}

Session::~Session() {
  MPI_Finalize();
}

int Session::nodeLocalRank() const {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int rank = 0;
  MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  return rank;
}

std::unique_ptr<Communicator> Session::world() {
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
}

}  // namespace kvq::mpi
