#include "common/broker.h"

#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/broker_journal.h"
#include "common/log.h"

namespace streamlm {

absl::StatusOr<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Start(
    int port, const std::vector<std::string>& topics, int partitions,
    const std::string& journal_dir) {
  std::unique_ptr<EmbeddedBroker> b(new EmbeddedBroker());
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  b->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (b->rk_ == nullptr) {
    return absl::InternalError(absl::StrCat("embedded broker: ", err));
  }
  b->cluster_ = rd_kafka_mock_cluster_new(b->rk_, 1);
  if (b->cluster_ == nullptr) {
    return absl::InternalError("embedded broker: mock cluster did not start");
  }
  b->mock_address_ = rd_kafka_mock_cluster_bootstraps(b->cluster_);
  for (const std::string& t : topics) {
    absl::Status s = b->CreateTopic(t, partitions);
    if (!s.ok()) return s;
  }
  if (!journal_dir.empty()) {
    // Replayed through the mock broker's own address, before the public one
    // listens: no client's record can come between the journal's.
    auto journal = BrokerJournal::Open(journal_dir, b->mock_address_, topics, partitions);
    if (!journal.ok()) return journal.status();
    b->journal_ = std::move(*journal);
    b->replayed_ = b->journal_->replayed();
  }
  if (port == 0) {
    b->bootstrap_ = b->mock_address_;
    return b;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(
        "embedded broker cannot listen on 127.0.0.1:", port, ": ",
        std::strerror(e), " (set broker.port, or --kafka to use another broker)"));
  }
  b->listen_fd_ = fd;
  b->bootstrap_ = absl::StrCat("127.0.0.1:", port);
  b->accept_thread_ = std::thread([raw = b.get()] { raw->AcceptLoop(); });
  return b;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (absl::Status s = CloseJournal(); !s.ok()) SLM_LOG(kError) << s;
  stop_ = true;
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  if (rk_) rd_kafka_destroy(rk_);
}

absl::Status EmbeddedBroker::CloseJournal() {
  if (journal_ == nullptr) return absl::OkStatus();
  // NOT_LEADER_FOR_PARTITION: retriable, so producers hold on to what they
  // send; enough errors for every producer's retries while the journal
  // catches up.
  PushRequestErrors(kApiProduce, std::vector<int>(100000, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION));
  absl::Status s = journal_->Stop(10000);
  journal_.reset();
  return s;
}

absl::Status EmbeddedBroker::SetDown(bool down) {
  rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(cluster_, -1)
                               : rd_kafka_mock_broker_set_up(cluster_, -1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat("embedded broker: cannot take it ",
                                            down ? "down" : "up", ": ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

absl::Status EmbeddedBroker::CreateTopic(const std::string& topic,
                                         int partitions) {
  rd_kafka_resp_err_t e =
      rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
      e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return absl::InternalError(absl::StrCat("create topic ", topic, ": ",
                                            rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

void EmbeddedBroker::PushRequestErrors(int16_t api_key, const std::vector<int>& errors) {
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, codes.size(), codes.data());
}

void EmbeddedBroker::ClearRequestErrors(int16_t api_key) {
  rd_kafka_mock_clear_request_errors(cluster_, api_key);
}

void EmbeddedBroker::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int client = accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    std::thread(&EmbeddedBroker::Relay, client, mock_address_).detach();
  }
}

// Forwards bytes both ways between a client and the mock broker until either
// side closes. Bootstrap connections are short-lived: clients move to the
// advertised broker address after their first metadata request.
void EmbeddedBroker::Relay(int client_fd, std::string target) {
  size_t colon = target.rfind(':');
  int port = 0;
  std::string host = target.substr(0, colon);
  if (!absl::SimpleAtoi(target.substr(colon + 1), &port)) {
    close(client_fd);
    return;
  }
  int upstream = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    SLM_LOG(kWarning) << "broker relay: cannot reach " << target;
    close(upstream);
    close(client_fd);
    return;
  }
  int one = 1;
  setsockopt(client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  pollfd fds[2] = {{client_fd, POLLIN, 0}, {upstream, POLLIN, 0}};
  char buf[65536];
  bool open = true;
  while (open) {
    if (poll(fds, 2, 1000) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2 && open; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        open = false;
        break;
      }
      int out = fds[1 - i].fd;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(out, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) {
          open = false;
          break;
        }
        off += w;
      }
    }
  }
  close(upstream);
  close(client_fd);
}

}  // namespace streamlm
