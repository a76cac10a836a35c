#include "kvq/dist/thread_communicator.h"

#include <algorithm>
#include <barrier>
#include <cstring>
#include <string>
#include <utility>

#include "kvq/base/error.h"

namespace kvq {
namespace {

// What the ranks of one communicator share. Each collective: every rank posts its
// input in its slot, waits for all, reads the slots it needs, and waits again so no
// input is released or overwritten while another rank still reads it.
struct Hub {
  explicit Hub(int ranks)
      : barrier(ranks),
        inputs(static_cast<size_t>(ranks)),
        values(static_cast<size_t>(ranks)),
        colorKey(static_cast<size_t>(ranks)),
        made(static_cast<size_t>(ranks)) {}
  std::barrier<> barrier;
  std::vector<const void*> inputs;
  std::vector<int64_t> values;
  std::vector<std::pair<int, int>> colorKey;
  std::vector<std::shared_ptr<Hub>> made;  // split(): the hub each group's first rank made
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Hub> hub, int rank, int size)
      : m_hub(std::move(hub)), m_rank(rank), m_size(size) {}

  int rank() const override { return m_rank; }
  int size() const override { return m_size; }

  void allGather(const void* mine, void* all, const std::vector<int64_t>& bytes) override {
    if (static_cast<int>(bytes.size()) != m_size)
      throwInternal("allGather",
                    std::to_string(bytes.size()) + " block sizes for " + std::to_string(m_size) + " ranks");
    post(mine);
    auto* out = static_cast<char*>(all);
    for (int r = 0; r < m_size; ++r) {
      const int64_t n = bytes[static_cast<size_t>(r)];
      const void* in = m_hub->inputs[static_cast<size_t>(r)];
      if (n > 0 && in != out) std::memmove(out, in, static_cast<size_t>(n));
      out += n;
    }
    m_hub->barrier.arrive_and_wait();
  }

  int64_t allReduceMax(int64_t value) override {
    m_hub->values[static_cast<size_t>(m_rank)] = value;
    m_hub->barrier.arrive_and_wait();
    const int64_t result = *std::max_element(m_hub->values.begin(), m_hub->values.end());
    m_hub->barrier.arrive_and_wait();
    return result;
  }

  std::vector<std::string> gatherToRoot(const std::string& mine) override {
    post(&mine);
    std::vector<std::string> all;
    if (m_rank == 0) {
      for (const void* p : m_hub->inputs) all.push_back(*static_cast<const std::string*>(p));
    }
    m_hub->barrier.arrive_and_wait();
    return all;
  }

  std::string broadcastFromRoot(const std::string& data) override {
    post(&data);
    std::string result = *static_cast<const std::string*>(m_hub->inputs[0]);
    m_hub->barrier.arrive_and_wait();
    return result;
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    m_hub->colorKey[static_cast<size_t>(m_rank)] = {color, key};
    m_hub->barrier.arrive_and_wait();
    std::vector<std::pair<int, int>> members;  // (key, rank) of my color
    for (int r = 0; r < m_size; ++r) {
      const auto& ck = m_hub->colorKey[static_cast<size_t>(r)];
      if (ck.first == color) members.emplace_back(ck.second, r);
    }
    std::sort(members.begin(), members.end());
    if (members.empty())
      throwInternal("split", "rank " + std::to_string(m_rank) + " is not in its own color");
    const int leader = members[0].second;
    const auto me =
        std::find_if(members.begin(), members.end(), [&](const auto& m) { return m.second == m_rank; });
    const auto newRank = static_cast<int>(me - members.begin());
    if (m_rank == leader)
      m_hub->made[static_cast<size_t>(m_rank)] = std::make_shared<Hub>(static_cast<int>(members.size()));
    m_hub->barrier.arrive_and_wait();
    std::shared_ptr<Hub> hub = m_hub->made[static_cast<size_t>(leader)];
    m_hub->barrier.arrive_and_wait();
    return std::make_unique<ThreadCommunicator>(std::move(hub), newRank, static_cast<int>(members.size()));
  }

 private:
  void post(const void* input) {
    m_hub->inputs[static_cast<size_t>(m_rank)] = input;
    m_hub->barrier.arrive_and_wait();
  }

  std::shared_ptr<Hub> m_hub;
  int m_rank;
  int m_size;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> makeThreadCommunicators(int ranks) {
  if (ranks < 1) throwInternal("makeThreadCommunicators", "at least one rank");
  auto hub = std::make_shared<Hub>(ranks);
  std::vector<std::unique_ptr<Communicator>> comms;
  comms.reserve(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) comms.push_back(std::make_unique<ThreadCommunicator>(hub, r, ranks));
  return comms;
}

}  // namespace kvq
