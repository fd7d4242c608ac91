// Runs the `streamlm` binary as a child process for end-to-end tests.
#ifndef STREAMLM_TESTS_UTIL_SUBPROCESS_H_
#define STREAMLM_TESTS_UTIL_SUBPROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace streamlm::testing {

inline std::string StreamlmBinary() {
  const char* b = std::getenv("STREAMLM_BINARY");
  return b ? b : "streamlm";
}

// A child whose stdout is read line by line and whose stderr goes to a file.
class Subprocess {
 public:
  Subprocess(const std::vector<std::string>& argv, const std::string& stderr_path)
      : stderr_path_(stderr_path) {
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, STDERR_FILENO);
      close(out[0]);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    stdout_fd_ = out[0];
  }
  ~Subprocess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_fd_ >= 0) close(stdout_fd_);
  }

  // Next stdout line, or false on timeout/EOF.
  bool ReadLine(std::string* line, int timeout_ms) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        *line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return true;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      pollfd p{stdout_fd_, POLLIN, 0};
      if (poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = read(stdout_fd_, buf, sizeof(buf));
      if (n <= 0) return false;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  // Sends `sig` and waits for the exit code (-1 on timeout, 128+N if killed).
  int Stop(int sig, int timeout_ms) {
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      usleep(20000);
    }
    return -1;
  }

  // Sends `sig` without waiting (e.g. SIGUSR1 to `streamlm broker`).
  void Signal(int sig) { kill(pid_, sig); }

  // Waits for the child to exit by itself.
  int Wait(int timeout_ms) { return Stop(0, timeout_ms); }

  std::string StderrTail(size_t bytes = 4000) const {
    std::ifstream in(stderr_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > bytes ? s.substr(s.size() - bytes) : s;
  }

 private:
  std::string stderr_path_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_SUBPROCESS_H_
