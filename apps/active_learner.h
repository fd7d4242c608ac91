// ActiveLearner: the learner a signal or a decision reaches once it
// exists. Set() after creating it (stopping it at once when a signal came
// first), Clear() before destroying it; Stop() and OnDecision() from any
// thread (the signal thread, the decision follower's) reach it or nothing.
#ifndef STREAMLM_APPS_ACTIVE_LEARNER_H_
#define STREAMLM_APPS_ACTIVE_LEARNER_H_

#include <mutex>

#include "common/json_util.h"
#include "learner/learner.h"

namespace streamlm {

class ActiveLearner {
 public:
  void Set(Learner* learner, bool stopped) {
    std::lock_guard<std::mutex> lock(mu_);
    learner_ = learner;
    if (stopped) learner_->Stop();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    learner_ = nullptr;
  }
  void Stop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (learner_ != nullptr) learner_->Stop();
  }
  void OnDecision(const Json& decision) {
    std::lock_guard<std::mutex> lock(mu_);
    if (learner_ != nullptr) learner_->OnDecision(decision);
  }

 private:
  std::mutex mu_;
  Learner* learner_ = nullptr;  // GUARDED_BY(mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_APPS_ACTIVE_LEARNER_H_
