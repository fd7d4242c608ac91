#include "serving/decision_follower.h"

#include <chrono>
#include <map>
#include <optional>
#include <utility>

#include "common/kafka.h"
#include "common/log.h"

namespace streamlm {

struct DecisionFollower::Impl {
  std::unique_ptr<KafkaConsumer> consumer;
};

DecisionFollower::DecisionFollower(std::string brokers, std::string topic, CatchUp catch_up,
                                   Counters* counters, OnDecisions on_decisions,
                                   int64_t fallback_ms)
    : brokers_(std::move(brokers)),
      topic_(std::move(topic)),
      catch_up_(std::move(catch_up)),
      counters_(counters),
      on_decisions_(std::move(on_decisions)),
      fallback_ms_(fallback_ms),
      impl_(std::make_unique<Impl>()) {}

DecisionFollower::~DecisionFollower() { Stop(); }

absl::Status DecisionFollower::Start() {
  // The group only names the client in the broker's logs: nothing is committed.
  auto consumer = KafkaConsumer::Create(brokers_, "streamlm-decision-follower", topic_, {});
  if (!consumer.ok()) return consumer.status();
  impl_->consumer = std::move(*consumer);
  stopping_ = false;
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void DecisionFollower::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  impl_->consumer.reset();
}

void DecisionFollower::Loop() {
  int64_t last_error_log_ms = 0;
  int64_t last_catch_up_ms = NowMs();
  while (!stopping_) {
    // A batch: what arrived within 200 ms of the first record.
    std::vector<Json> batch;
    bool got_any = false;
    int timeout_ms = 200;
    while (!stopping_) {
      auto msg = impl_->consumer->Poll(timeout_ms);
      if (!msg.ok()) {
        counters_->Add("streamlm_follower_kafka_errors_total", 1);
        const int64_t now = NowMs();
        if (now - last_error_log_ms > 10000) {
          last_error_log_ms = now;
          SLM_LOG(kWarning) << "decision follower: reading " << topic_ << ": " << msg.status()
                            << " (retrying)";
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        break;
      }
      if (!msg->has_value()) break;
      got_any = true;
      auto decision = ParseJson((*msg)->value);
      if (!decision.ok() || !decision->is_object()) {
        counters_->Add("streamlm_follower_bad_decisions_total", 1);
        SLM_LOG(kWarning) << "decision follower: " << topic_ << "[" << (*msg)->partition << "]@"
                          << (*msg)->offset << " is not a decision record; skipped";
        continue;
      }
      batch.push_back(std::move(*decision));
      timeout_ms = 0;  // drain what is already here, then act once
    }
    if (!got_any && NowMs() - last_catch_up_ms < fallback_ms_) continue;
    last_catch_up_ms = NowMs();
    absl::Status s = catch_up_();
    if (!s.ok()) {
      counters_->Add("streamlm_follower_catch_up_failures_total", 1);
      SLM_LOG(kWarning) << "decision follower: " << s;
      last_catch_up_ms = 0;  // again after the next poll
      continue;
    }
    counters_->Add("streamlm_follower_catch_ups_total", 1);
    on_decisions_(batch);
  }
}

}  // namespace streamlm
