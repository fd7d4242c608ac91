#include "serving/guarded_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace streamlm {
namespace serving_internal {
namespace {

using Clock = std::chrono::steady_clock;

// Set while the pool runs a connection's task on the refusal path.
thread_local bool t_refusing = false;

// How often a connection waiting for bytes checks whether the server stops.
constexpr int kStopCheckMs = 200;

Clock::time_point After(double seconds) {
  return Clock::now() + std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

int MsUntil(Clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
  return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(ms, 1 << 30)));
}

void IpAndPort(const sockaddr_storage& addr, socklen_t len, std::string& ip, int& port) {
  char host[NI_MAXHOST] = {0};
  char serv[NI_MAXSERV] = {0};
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, host, sizeof(host), serv,
                  sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = atoi(serv);
  }
}

}  // namespace

// The task queue cpp-httplib's accept loop hands connections to: a thread
// per connection, at most `max` at once. Threads are created on demand,
// reused, and end after kIdleExitS without a connection. Beyond the limit,
// enqueue runs the task on the accepting thread with t_refusing set, and
// GuardedHttpServer hands the socket to its Refuser there.
class ConnectionPool : public httplib::TaskQueue {
 public:
  static constexpr int kIdleExitS = 30;

  ConnectionPool(int max, std::atomic<int>* open) : max_(max), open_(open) {}
  ~ConnectionPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      JoinRetired();
      if (!stopping_ && open_->load() < max_) {
        open_->fetch_add(1);
        jobs_.push_back(std::move(fn));
        if (jobs_.size() > idle_) {
          auto it = threads_.emplace(threads_.end());
          *it = std::thread([this, it] { Work(it); });
        }
        cv_.notify_one();
        return;
      }
    }
    t_refusing = true;
    fn();
    t_refusing = false;
  }

  // Called by the accept loop when it ends (the server stops): connection
  // threads notice within kStopCheckMs, or when their handler returns.
  void shutdown() override {
    std::list<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      threads.swap(threads_);
      threads.splice(threads.end(), retired_);
    }
    cv_.notify_all();
    for (std::thread& t : threads) t.join();
  }

 private:
  // REQUIRES: mu_ held. Threads in retired_ have left Work() (they moved
  // themselves there holding mu_, and only return after), so joining is
  // quick.
  void JoinRetired() {
    for (std::thread& t : retired_) t.join();
    retired_.clear();
  }

  void Work(std::list<std::thread>::iterator self) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      ++idle_;
      const bool woken = cv_.wait_for(lock, std::chrono::seconds(kIdleExitS),
                                      [this] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty()) {
        // Idle too long: retire (stopping: shutdown() owns the thread).
        if (!woken && !stopping_) retired_.splice(retired_.end(), threads_, self);
        return;
      }
      std::function<void()> fn = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
      open_->fetch_sub(1);
    }
  }

  const int max_;
  std::atomic<int>* const open_;  // the server's count of open connections
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // GUARDED_BY(mu_)
  std::list<std::thread> threads_;          // GUARDED_BY(mu_)
  std::list<std::thread> retired_;          // GUARDED_BY(mu_) ended, to join
  size_t idle_ = 0;                         // GUARDED_BY(mu_) threads waiting for a job
  bool stopping_ = false;                   // GUARDED_BY(mu_)
};

// Answers connections beyond the limit, all on one thread with one poll()
// over them: it waits up to kRequestLineMs for the request line, answers
// it with `answer(line)` (health checks get their real answer, anything
// else 503; "" when no line came in time), shuts the sending side, then
// reads and drops what the client still sends for up to kLingerMs before
// closing (closing with unread bytes would reset the connection, and the
// client could lose the answer). Thread-safe.
class Refuser {
 public:
  static constexpr int kRequestLineMs = 1000;
  static constexpr int kLingerMs = 1000;
  static constexpr size_t kMaxSockets = 4096;  // beyond: answered and closed at once
  static constexpr size_t kMaxLineBytes = 2048;

  explicit Refuser(std::function<std::string(const std::string& request_line)> answer)
      : answer_(std::move(answer)), thread_([this] { Loop(); }) {}
  ~Refuser() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    for (const Pending& p : pending_) close(p.fd);
  }

  // Takes ownership of `sock`.
  void Add(int sock) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ || held_ >= kMaxSockets) {
      lock.unlock();
      Send(sock, answer_(""));
      close(sock);
      return;
    }
    Pending p;
    p.fd = sock;
    p.until = Clock::now() + std::chrono::milliseconds(kRequestLineMs);
    pending_.push_back(std::move(p));
    ++held_;
    cv_.notify_one();
  }

 private:
  struct Pending {
    int fd = -1;
    bool answered = false;
    Clock::time_point until;  // for the request line, then for lingering
    std::string line;
  };

  static void Send(int sock, const std::string& out) {
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = send(sock, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) break;  // a fresh socket's buffer holds a small answer; else give up
      off += static_cast<size_t>(n);
    }
  }

  void Answer(Pending& p) {
    Send(p.fd, answer_(p.line));
    shutdown(p.fd, SHUT_WR);
    p.answered = true;
    p.until = Clock::now() + std::chrono::milliseconds(kLingerMs);
  }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    char buf[4096];
    while (!stopping_) {
      if (pending_.empty()) {
        cv_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
        continue;
      }
      // Only this thread removes entries or touches their state; Add
      // appends. Work on a snapshot without the lock.
      std::vector<Pending> work;
      work.swap(pending_);
      lock.unlock();
      std::vector<pollfd> fds;
      for (const Pending& p : work) fds.push_back({p.fd, POLLIN, 0});
      poll(fds.data(), fds.size(), 50);
      const Clock::time_point now = Clock::now();
      std::vector<Pending> keep;
      for (size_t i = 0; i < work.size(); ++i) {
        Pending& p = work[i];
        bool closed = false;
        if (fds[i].revents != 0) {
          ssize_t n = recv(p.fd, buf, sizeof(buf), MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            closed = true;
          } else if (n > 0 && !p.answered) {
            p.line.append(buf, static_cast<size_t>(n));
            size_t eol = p.line.find('\n');
            if (eol != std::string::npos || p.line.size() >= kMaxLineBytes) {
              p.line.resize(std::min(eol, p.line.size()));
              Answer(p);
            }
          }
        }
        if (!p.answered && (closed || p.until <= now)) {
          p.line.clear();  // not a whole request line
          if (!closed)
            Answer(p);
          else
            Send(p.fd, answer_(""));
        }
        if (closed || (p.answered && p.until <= now)) {
          close(p.fd);
        } else {
          keep.push_back(std::move(p));
        }
      }
      lock.lock();
      for (Pending& p : pending_) keep.push_back(std::move(p));  // added meanwhile
      pending_.swap(keep);
      held_ = pending_.size();
    }
  }

  const std::function<std::string(const std::string&)> answer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> pending_;  // GUARDED_BY(mu_) except while Loop works on them
  size_t held_ = 0;               // GUARDED_BY(mu_) sockets held, in pending_ or in Loop
  bool stopping_ = false;         // GUARDED_BY(mu_)
  std::thread thread_;            // last: starts after the members it uses
};

// One connection's socket as cpp-httplib reads and writes it, with a whole
// deadline on reading: read() fails once the deadline of the current phase
// (headers, then body) has passed, however the bytes trickle in. Buffered,
// and kept for the connection's life (pipelined bytes are not lost between
// requests). Used by one thread.
class ConnectionStream : public httplib::Stream {
 public:
  enum Phase { kHeaders, kBody };

  ConnectionStream(socket_t sock, time_t write_timeout_sec, time_t write_timeout_usec,
                   const std::atomic<socket_t>* server_socket)
      : sock_(sock),
        write_timeout_ms_(static_cast<int>(write_timeout_sec * 1000 + write_timeout_usec / 1000)),
        server_socket_(server_socket) {}

  // Starts reading a new request (its headers) with `deadline`.
  void BeginRequest(Clock::time_point deadline) {
    phase_ = kHeaders;
    deadline_ = deadline;
    timed_out_ = false;
    request_bytes_ = 0;
    written_bytes_ = 0;
  }
  void BeginBody(Clock::time_point deadline) {
    phase_ = kBody;
    deadline_ = deadline;
  }
  Phase phase() const { return phase_; }
  bool timed_out() const { return timed_out_; }
  // Bytes of the current request read (or buffered) so far.
  size_t request_bytes() const { return request_bytes_ + (end_ - begin_); }
  size_t written_bytes() const { return written_bytes_; }

  // Waits for the first byte of the next request (or buffered bytes): false
  // at the deadline, at end of stream, or when the server stops.
  bool WaitForRequest() {
    if (begin_ < end_) return true;
    return Fill() > 0;
  }

  bool is_readable() const override { return begin_ < end_; }

  bool is_writable() const override {
    if (timed_out_) return false;
    pollfd p = {sock_, POLLOUT, 0};
    if (poll(&p, 1, write_timeout_ms_) <= 0 || (p.revents & (POLLERR | POLLHUP))) return false;
    // The peer may have closed (a streaming client that left): peek.
    pollfd r = {sock_, POLLIN, 0};
    if (poll(&r, 1, 0) <= 0) return true;
    char c;
    return recv(sock_, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (begin_ == end_) {
      ssize_t n = Fill();
      if (n <= 0) return n;
    }
    size_t n = std::min(size, end_ - begin_);
    memcpy(ptr, buf_ + begin_, n);
    begin_ += n;
    request_bytes_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    // After a deadline the guard answers 408 itself; cpp-httplib's own
    // answer to the failed read is dropped.
    if (!is_writable()) return -1;
    ssize_t n = send(sock_, ptr, size, MSG_NOSIGNAL);
    if (n > 0) written_bytes_ += static_cast<size_t>(n);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      IpAndPort(addr, len, ip, port);
    }
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      IpAndPort(addr, len, ip, port);
    }
  }
  socket_t socket() const override { return sock_; }

 private:
  // Reads what the socket has into the (empty) buffer, waiting until the
  // deadline: > 0 bytes, 0 at end of stream, -1 on error, deadline or stop.
  ssize_t Fill() {
    begin_ = end_ = 0;
    while (true) {
      if (server_socket_->load() == INVALID_SOCKET) return -1;
      const int left_ms = MsUntil(deadline_);
      if (left_ms <= 0) {
        timed_out_ = true;
        return -1;
      }
      pollfd p = {sock_, POLLIN, 0};
      int ready = poll(&p, 1, std::min(left_ms, kStopCheckMs));
      if (ready < 0 && errno != EINTR) return -1;
      if (ready <= 0) continue;
      ssize_t n = recv(sock_, buf_, sizeof(buf_), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) return n;
      end_ = static_cast<size_t>(n);
      return n;
    }
  }

  const socket_t sock_;
  const int write_timeout_ms_;
  const std::atomic<socket_t>* const server_socket_;  // INVALID_SOCKET once stopping
  char buf_[4096];
  size_t begin_ = 0, end_ = 0;  // unread bytes: buf_[begin_, end_)
  Phase phase_ = kHeaders;
  Clock::time_point deadline_;
  bool timed_out_ = false;
  size_t request_bytes_ = 0;  // of the current request, handed to cpp-httplib
  size_t written_bytes_ = 0;  // of the current response
};

}  // namespace serving_internal

using serving_internal::ConnectionPool;
using serving_internal::ConnectionStream;

GuardedHttpServer::GuardedHttpServer(const ConnectionLimits& limits, GuardErrorBody error_body,
                                     HealthAnswer health)
    : limits_(limits), error_body_(std::move(error_body)), health_(std::move(health)) {
  refuser_ = std::make_unique<serving_internal::Refuser>(
      [this](const std::string& line) { return AnswerAtLimit(line); });
  // What `Keep-Alive: timeout=` tells clients: an idle connection is closed
  // at the header deadline.
  keep_alive_timeout_sec_ = std::max<time_t>(1, static_cast<time_t>(limits_.header_timeout_s));
  new_task_queue = [this] {
    return new ConnectionPool(std::max(1, limits_.max_connections), &open_);
  };
}

GuardedHttpServer::~GuardedHttpServer() {
  refuser_.reset();  // its thread calls AnswerAtLimit
}

bool GuardedHttpServer::WidenListenBacklog() {
  const socket_t sock = svr_sock_.load();
  // Listening again on a listening socket only changes its backlog.
  return sock != INVALID_SOCKET &&
         ::listen(sock, std::max(SOMAXCONN, limits_.max_connections)) == 0;
}

std::string GuardedHttpServer::DirectResponse(int status, const std::string& reason,
                                              const std::string& body, bool retry_after) {
  return absl::StrCat("HTTP/1.1 ", status, " ", reason,
                      "\r\nContent-Type: application/json\r\nConnection: close\r\n",
                      retry_after ? "Retry-After: 1\r\n" : "", "Content-Length: ", body.size(),
                      "\r\n\r\n", body);
}

std::string GuardedHttpServer::ErrorResponse(int status, const std::string& reason,
                                             const std::string& message, bool retry_after) {
  return DirectResponse(status, reason, error_body_ ? error_body_(status, message) : message,
                        retry_after);
}

std::string GuardedHttpServer::AnswerAtLimit(const std::string& request_line) {
  // "GET /healthz HTTP/1.1": health checks get their answer even now.
  const size_t sp1 = request_line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : request_line.find(' ', sp1 + 1);
  if (health_ && sp2 != std::string::npos) {
    const std::string method = request_line.substr(0, sp1);
    std::string path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    int status = 0;
    std::string body;
    if ((method == "GET" || method == "HEAD") && health_(path, &status, &body)) {
      health_at_limit_.fetch_add(1);
      std::string out = DirectResponse(status, status == 200 ? "OK" : "Service Unavailable", body,
                                       /*retry_after=*/false);
      if (method == "HEAD") out.resize(out.size() - body.size());
      return out;
    }
  }
  refused_.fetch_add(1);
  return ErrorResponse(503, "Service Unavailable",
                       absl::StrCat("the server is at its connection limit "
                                    "(serving.max_connections = ",
                                    limits_.max_connections, "); retry later"),
                       /*retry_after=*/true);
}

void GuardedHttpServer::WriteDirect(socket_t sock, const std::string& out) {
  size_t off = 0;
  while (off < out.size()) {
    ssize_t n = send(sock, out.data() + off, out.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;  // the client does not read: give up, it is being closed
    off += static_cast<size_t>(n);
  }
}

bool GuardedHttpServer::process_and_close_socket(socket_t sock) {
  if (serving_internal::t_refusing) {
    // On the accepting thread: no thread of its own; the refuser answers.
    refuser_->Add(sock);
    return false;
  }
  ConnectionStream strm(sock, write_timeout_sec_, write_timeout_usec_, &svr_sock_);
  bool ret = false;
  for (size_t served = 0; served < keep_alive_max_count_; ++served) {
    strm.BeginRequest(serving_internal::After(limits_.header_timeout_s));
    // An idle connection (no byte of a next request) just closes.
    if (!strm.WaitForRequest()) {
      if (strm.timed_out() && served == 0) header_timeouts_.fetch_add(1);
      break;
    }
    bool connection_closed = false;
    ret = process_request(strm, served + 1 == keep_alive_max_count_, connection_closed,
                          [this, &strm](httplib::Request&) {
                            strm.BeginBody(serving_internal::After(limits_.body_timeout_s));
                          });
    if (strm.timed_out()) {
      const bool headers = strm.phase() == ConnectionStream::kHeaders;
      (headers ? header_timeouts_ : body_timeouts_).fetch_add(1);
      if (strm.written_bytes() == 0) {
        WriteDirect(sock,
                    ErrorResponse(408, "Request Timeout",
                                  headers ? absl::StrCat("request headers not received within "
                                                         "serving.header_timeout_s (",
                                                         limits_.header_timeout_s, " s)")
                                          : absl::StrCat("request body not received within "
                                                         "serving.body_timeout_s (",
                                                         limits_.body_timeout_s, " s)"),
                                  /*retry_after=*/false));
      }
      ret = false;
      break;
    }
    if (!ret || connection_closed) break;
  }
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return ret;
}

}  // namespace streamlm
