// A loopback TCP port nothing listens on now (the kernel's pick), for a
// process a test starts later on a fixed port.
#ifndef STREAMLM_TESTS_UTIL_FREE_PORT_H_
#define STREAMLM_TESTS_UTIL_FREE_PORT_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace streamlm::testing {

// -1 when no port could be had.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_FREE_PORT_H_
