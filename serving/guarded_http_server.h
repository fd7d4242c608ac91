// GuardedHttpServer: cpp-httplib's server with the limits a public endpoint
// needs against idle, slow and half-open clients (README.md "Connections").
//
// cpp-httplib parses and routes as usual; this class replaces only how a
// connection is read and how connections are scheduled:
//  - every accepted connection gets a thread of its own at once (threads are
//    created on demand and reused), so a request never waits behind another
//    connection, however slow that one is: health checks stay prompt;
//  - at most `max_connections` connections are served at once; the next ones
//    take no thread: one thread answers them all, reading just their request
//    line: a health check (HealthAnswer) gets its answer, anything else 503
//    with `Connection: close`;
//  - a request's headers must arrive within `header_timeout_s` of the
//    connection's accept (or of the end of its previous response, for
//    keep-alive), and its body within `body_timeout_s` of the headers: whole
//    deadlines, not per-recv timeouts, so a client sending a byte a second is
//    closed too. A late request is answered 408 (when it had begun) and closed.
#ifndef STREAMLM_SERVING_GUARDED_HTTP_SERVER_H_
#define STREAMLM_SERVING_GUARDED_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace streamlm {

struct ConnectionLimits {
  // Connections served at once; each holds a thread while it is open.
  int max_connections = 1024;
  // Seconds from a connection's accept, or the end of its previous response,
  // to the end of the next request's headers (idle keep-alive time included).
  double header_timeout_s = 10;
  // Seconds from the end of a request's headers to the end of its body.
  double body_timeout_s = 30;
};

// The body (JSON) of an answer the guard gives itself, before any route
// runs: 503 at the connection limit, 408 for a request that came too late.
using GuardErrorBody = std::function<std::string(int status, const std::string& message)>;

// Health checks answered even at the connection limit: for a GET or HEAD
// of `path`, fills the status and JSON body and returns true; false for
// any other path. Called from the thread that answers over-limit
// connections; must be thread-safe and quick.
using HealthAnswer = std::function<bool(const std::string& path, int* status, std::string* body)>;

namespace serving_internal {
class ConnectionPool;
class Refuser;
}  // namespace serving_internal

// Thread-safety: configure (routes, handlers) before listening, as with
// httplib::Server; the counters may be read from any thread. Each
// connection's requests run on that connection's thread.
class GuardedHttpServer : public httplib::Server {
 public:
  GuardedHttpServer(const ConnectionLimits& limits, GuardErrorBody error_body,
                    HealthAnswer health = nullptr);
  ~GuardedHttpServer() override;

  // Call after bind_to_port / bind_to_any_port, before listening: widens the
  // accept queue from cpp-httplib's compiled-in 5 to the kernel's limit
  // (net.core.somaxconn). With 5, a burst of connections overflows it and
  // the kernel drops their handshakes: clients think they are connected
  // but wait for SYN-ACK retransmits (seconds to minutes) before the server
  // sees them. False when the socket cannot listen.
  bool WidenListenBacklog();

  // Connections being served now (refused ones not included).
  int open_connections() const { return open_.load(); }
  // Since construction: connections refused at the limit (503), health
  // checks answered at the limit, and requests closed by the header or
  // body deadline.
  int64_t refused_connections() const { return refused_.load(); }
  int64_t health_answered_at_limit() const { return health_at_limit_.load(); }
  int64_t header_timeouts() const { return header_timeouts_.load(); }
  int64_t body_timeouts() const { return body_timeouts_.load(); }

 private:
  // Serves one accepted connection: requests until the client closes, a
  // deadline passes or the server stops. On the pool's refusal path (see
  // ConnectionPool) answers 503 instead.
  bool process_and_close_socket(socket_t sock) override;
  // A complete small response with `Connection: close`.
  static std::string DirectResponse(int status, const std::string& reason, const std::string& body,
                                    bool retry_after);
  std::string ErrorResponse(int status, const std::string& reason, const std::string& message,
                            bool retry_after);
  // The answer to an over-limit connection whose request line is
  // `request_line` ("" when none came in time): health, else 503.
  std::string AnswerAtLimit(const std::string& request_line);
  // Writes `out` without blocking (best effort).
  static void WriteDirect(socket_t sock, const std::string& out);

  const ConnectionLimits limits_;
  const GuardErrorBody error_body_;
  const HealthAnswer health_;
  std::unique_ptr<serving_internal::Refuser> refuser_;
  std::atomic<int> open_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> health_at_limit_{0};
  std::atomic<int64_t> header_timeouts_{0};
  std::atomic<int64_t> body_timeouts_{0};
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_GUARDED_HTTP_SERVER_H_
