#include "kvq/dist/communicator.h"

#include <cstring>

#include "kvq/base/error.h"

namespace kvq {
namespace {

class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allGather(const void* mine, void* all, const std::vector<int64_t>& bytes) override {
    if (bytes.size() != 1)
      throwInternal("allGather", "one rank, " + std::to_string(bytes.size()) + " blocks");
    if (bytes[0] > 0 && mine != all) std::memmove(all, mine, static_cast<size_t>(bytes[0]));
  }
  int64_t allReduceMax(int64_t value) override { return value; }
  std::vector<std::string> gatherToRoot(const std::string& mine) override { return {mine}; }
  std::string broadcastFromRoot(const std::string& data) override { return data; }
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SoloCommunicator>(); }
};

}  // namespace

std::unique_ptr<Communicator> makeSoloCommunicator() {
  return std::make_unique<SoloCommunicator>();
}

}  // namespace kvq
