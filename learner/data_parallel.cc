// c10d's Gloo process group is compiled into Debian's libtorch; its header
// is guarded by the macro the torch build defines.
#define USE_C10D_GLOO 1
#include "learner/data_parallel.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace streamlm {

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
};

namespace {

// Runs a c10d call, turning its exceptions into a status naming `what`.
template <typename F>
absl::Status Guard(const char* what, F&& f) {
  try {
    f();
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::UnavailableError(absl::StrCat("data-parallel ", what, " failed: ",
                                               e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("data-parallel ", what, " failed: ", e.what()));
  }
}

void Wait(const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait()) throw std::runtime_error("the collective was aborted");
}

}  // namespace

DataParallel::DataParallel(int rank, int world_size, std::unique_ptr<Impl> impl)
    : rank_(rank), world_size_(world_size), impl_(std::move(impl)) {}

DataParallel::~DataParallel() = default;

absl::StatusOr<std::unique_ptr<DataParallel>> DataParallel::Connect(
    const DataParallelOptions& o) {
  if (o.world_size < 1 || o.world_size > 62) {
    return absl::InvalidArgumentError(
        absl::StrCat("--world-size must be 1..62, not ", o.world_size));
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("--rank must be 0..", o.world_size - 1,
                                                   " for --world-size ", o.world_size,
                                                   ", not ", o.rank));
  }
  const size_t colon = o.master.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(o.master.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--master must be HOST:PORT, not '", o.master, "'"));
  }
  std::string host = o.master.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto impl = std::make_unique<Impl>();
  absl::Status s = Guard("rendezvous", [&] {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    impl->store = c10::make_intrusive<c10d::TCPStore>(host, so);
    auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
    options->devices.push_back(
        !o.interface.empty() ? c10d::ProcessGroupGloo::createDeviceForInterface(o.interface)
                             : c10d::ProcessGroupGloo::createDefaultDevice());
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, o.rank,
                                                              o.world_size, options);
  });
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(s.message(), " (rank ", o.rank, " of ",
                                               o.world_size, ", master ", o.master, ")"));
  }
  return std::unique_ptr<DataParallel>(new DataParallel(o.rank, o.world_size, std::move(impl)));
}

absl::Status DataParallel::BroadcastWords(std::vector<int64_t>* words) {
  return Guard("broadcast", [&] {
    std::vector<at::Tensor> t{torch::tensor(*words, torch::kLong)};
    Wait(impl_->group->broadcast(t));
    auto acc = t[0].accessor<int64_t, 1>();
    for (size_t i = 0; i < words->size(); ++i) (*words)[i] = acc[static_cast<int64_t>(i)];
  });
}

absl::Status DataParallel::BroadcastBytes(std::string* bytes) {
  std::vector<int64_t> size{static_cast<int64_t>(bytes->size())};
  absl::Status s = BroadcastWords(&size);
  if (!s.ok() || size[0] == 0) {
    if (s.ok()) bytes->clear();
    return s;
  }
  return Guard("broadcast", [&] {
    at::Tensor t = torch::empty({size[0]}, torch::kUInt8);
    if (rank_ == 0) std::memcpy(t.data_ptr(), bytes->data(), bytes->size());
    std::vector<at::Tensor> v{t};
    Wait(impl_->group->broadcast(v));
    bytes->assign(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(size[0]));
  });
}

absl::StatusOr<std::vector<std::vector<int64_t>>> DataParallel::AllGatherWords(
    const std::vector<int64_t>& mine) {
  std::vector<std::vector<int64_t>> all(static_cast<size_t>(world_size_));
  absl::Status s = Guard("all-gather", [&] {
    std::vector<at::Tensor> in{torch::tensor(mine, torch::kLong)};
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < world_size_; ++r) {
      out[0].push_back(torch::empty({static_cast<int64_t>(mine.size())}, torch::kLong));
    }
    Wait(impl_->group->allgather(out, in));
    for (int r = 0; r < world_size_; ++r) {
      auto acc = out[0][static_cast<size_t>(r)].accessor<int64_t, 1>();
      for (size_t i = 0; i < mine.size(); ++i) all[r].push_back(acc[static_cast<int64_t>(i)]);
    }
  });
  if (!s.ok()) return s;
  return all;
}

absl::StatusOr<std::vector<std::string>> DataParallel::GatherBytes(const std::string& mine) {
  auto sizes = AllGatherWords({static_cast<int64_t>(mine.size())});
  if (!sizes.ok()) return sizes.status();
  int64_t longest = 1;
  for (const auto& s : *sizes) longest = std::max(longest, s[0]);
  std::vector<std::string> out;
  absl::Status s = Guard("gather", [&] {
    at::Tensor in = torch::zeros({longest}, torch::kUInt8);
    std::memcpy(in.data_ptr(), mine.data(), mine.size());
    std::vector<at::Tensor> inputs{in};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size_; ++r) {
      outputs[0].push_back(torch::empty({longest}, torch::kUInt8));
    }
    Wait(impl_->group->allgather(outputs, inputs));
    if (rank_ != 0) return;
    for (int r = 0; r < world_size_; ++r) {
      const at::Tensor& t = outputs[0][static_cast<size_t>(r)];
      out.emplace_back(static_cast<const char*>(t.data_ptr()),
                       static_cast<size_t>((*sizes)[static_cast<size_t>(r)][0]));
    }
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status DataParallel::BroadcastParameters(const std::vector<torch::Tensor>& params) {
  return Guard("parameter broadcast", [&] {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> flat;
    for (const auto& p : params) flat.push_back(p.detach().reshape({-1}));
    std::vector<at::Tensor> v{torch::cat(flat)};
    Wait(impl_->group->broadcast(v));
    int64_t at = 0;
    for (const auto& p : params) {
      const int64_t n = p.numel();
      p.detach().copy_(v[0].slice(0, at, at + n).view(p.sizes()));
      at += n;
    }
  });
}

absl::Status DataParallel::AllReduceGradients(const std::vector<torch::Tensor>& params,
                                              double weight) {
  return Guard("gradient all-reduce", [&] {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> flat;
    for (const auto& p : params) {
      flat.push_back(p.grad().defined() && weight != 0
                         ? (p.grad() * weight).reshape({-1})
                         : torch::zeros({p.numel()}, p.options()));
    }
    // The weights travel with the gradients: one all-reduce per step.
    flat.push_back(torch::full({1}, weight, params.front().options()));
    std::vector<at::Tensor> v{torch::cat(flat)};
    Wait(impl_->group->allreduce(v));
    const int64_t total_at = v[0].numel() - 1;
    const double total = v[0][total_at].item<double>();
    if (total <= 0) throw std::runtime_error("no rank contributed to the step");
    int64_t at = 0;
    for (const auto& p : params) {
      const int64_t n = p.numel();
      p.mutable_grad() = (v[0].slice(0, at, at + n) / total).view(p.sizes()).clone();
      at += n;
    }
  });
}

}  // namespace streamlm
