// A test fixture for tests that run a real Learner: an embedded broker with
// the learner's topics (one partition each), a RocksDB store in a fresh
// directory bootstrapped with the tiny model, and the tiny learner config
// with snapshots by step count only. Uses tensors: TORCH test targets only.
#ifndef STREAMLM_TESTS_UTIL_LEARNER_FIXTURE_H_
#define STREAMLM_TESTS_UTIL_LEARNER_FIXTURE_H_

#include <memory>
#include <string>

#include "common/broker.h"
#include "common/config.h"
#include "gtest/gtest.h"
#include "learner/bootstrap.h"
#include "model/language_model.h"
#include "store/store.h"
#include "tests/util/heldout_stream.h"
#include "tests/util/temp_dir.h"

namespace streamlm::testing {

class LearnerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureTorchThreads(0);
    config_ = TinyConfig(dir_.Sub("store"));
    config_.learner.snapshot_every_s = 1000;  // snapshots by step count only
    auto broker = EmbeddedBroker::Start(
        0, {config_.topic_text, config_.topic_feedback, config_.topic_rejects}, 1);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = std::move(*broker);
    brokers_ = broker_->bootstrap();
    auto store = Store::Open(config_.data_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    ASSERT_TRUE(RunBootstrap(config_, store_.get(), [](const std::string&) {}).ok());
  }

  TempDir dir_;
  Config config_;
  std::unique_ptr<EmbeddedBroker> broker_;
  std::string brokers_;
  std::unique_ptr<Store> store_;
};

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_LEARNER_FIXTURE_H_
