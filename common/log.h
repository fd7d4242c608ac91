// Minimal leveled logging to stderr, one line per message, thread-safe.
#ifndef STREAMLM_COMMON_LOG_H_
#define STREAMLM_COMMON_LOG_H_

#include <sstream>
#include <string>

namespace streamlm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo; STREAMLM_LOG_LEVEL
// (debug|info|warning|error) overrides at start-up.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void EmitLog(LogLevel level, const char* file, int line, const std::string& msg);

namespace log_internal {
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line)
      : level_(level), file_(file), line_(line) {}
  ~LogMessage() { EmitLog(level_, file_, line_, stream_.str()); }
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};
}  // namespace log_internal

}  // namespace streamlm

#define SLM_LOG(level)                                                        \
  if (::streamlm::LogLevel::level < ::streamlm::GetLogLevel()) {              \
  } else                                                                      \
    ::streamlm::log_internal::LogMessage(::streamlm::LogLevel::level,         \
                                         __FILE__, __LINE__)                  \
        .stream()

#endif  // STREAMLM_COMMON_LOG_H_
