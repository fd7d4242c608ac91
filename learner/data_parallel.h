// DataParallel: the collectives data-parallel learners share (torch's c10d
// over Gloo), for `streamlm learn --world-size N --rank R --master HOST:PORT`.
//
// Rank 0 hosts the rendezvous (c10d's TCPStore) at --master; every rank
// connects to it, then all collectives go rank to rank over Gloo. Every
// call is a collective: all ranks must make the same calls in the same
// order (the learner's command protocol, learner/README.md "Data-parallel
// learners", guarantees it). A peer that dies or stops answering makes the
// call fail after `timeout` with an UnavailableError naming the operation;
// c10d exceptions never escape.
//
// Not thread-safe: one thread (the learner's) makes all calls.
#ifndef STREAMLM_LEARNER_DATA_PARALLEL_H_
#define STREAMLM_LEARNER_DATA_PARALLEL_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamlm {

struct DataParallelOptions {
  int world_size = 1;
  int rank = 0;
  std::string master;  // HOST:PORT of rank 0's rendezvous
  // The network interface Gloo binds to (GLOO_SOCKET_IFNAME, as in torch);
  // empty: the address this host's name resolves to, else loopback.
  std::string interface;
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

class DataParallel {
 public:
  // Connects to the rendezvous (rank 0 listens on the master's port) and
  // forms the Gloo group. InvalidArgument for a bad rank, world size or
  // address; Unavailable when the peers do not all arrive within `timeout`.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DataParallel>> Connect(
      const DataParallelOptions& options);
  ~DataParallel();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Rank 0's `words` replace everyone else's (equal sizes on every rank).
  [[nodiscard]] absl::Status BroadcastWords(std::vector<int64_t>* words);
  // Rank 0's bytes replace everyone else's (any size).
  [[nodiscard]] absl::Status BroadcastBytes(std::string* bytes);
  // Every rank's `mine` (equal sizes), indexed by rank.
  [[nodiscard]] absl::StatusOr<std::vector<std::vector<int64_t>>> AllGatherWords(
      const std::vector<int64_t>& mine);
  // Every rank's bytes (any sizes), indexed by rank; on rank 0 only (the
  // others get an empty vector).
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GatherBytes(const std::string& mine);
  // Rank 0's values of `params` replace everyone else's (in place).
  [[nodiscard]] absl::Status BroadcastParameters(const std::vector<torch::Tensor>& params);
  // The weighted mean of every rank's gradients: each parameter's grad
  // becomes sum_r(weight_r * grad_r) / sum_r(weight_r), the same on every
  // rank. A rank that trained on nothing this step passes weight 0 (its
  // undefined grads count as zeros). With weight = the blocks each rank
  // trained on (equal-length blocks, mean losses), this is the gradient of
  // one batch holding every rank's blocks.
  [[nodiscard]] absl::Status AllReduceGradients(const std::vector<torch::Tensor>& params,
                                                double weight);

 private:
  struct Impl;
  DataParallel(int rank, int world_size, std::unique_ptr<Impl> impl);
  int rank_;
  int world_size_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_DATA_PARALLEL_H_
