// Server without a model: the admin token rule (open on loopback only,
// closed elsewhere unless serving.admin_token is set), OpenAI error objects
// for routes that do not exist and for generation before a champion exists.
// With a tiny random model and an embedded broker: POST /v1/feedback writes
// the completion's prompt and response (as the client received them) to the
// feedback topic, and refuses what it cannot use.
#include "serving/server.h"

#include <httplib.h>

#include <chrono>
#include <map>
#include <thread>

#include "common/broker.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "model/language_model.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "tests/util/temp_dir.h"
#include "tests/util/tiny_model.h"

namespace streamlm {
namespace {

struct Running {
  std::unique_ptr<Store> store;
  Counters counters;
  std::unique_ptr<Server> server;
};

std::unique_ptr<Running> Start(const std::string& dir, const std::string& http,
                               const std::string& token) {
  auto r = std::make_unique<Running>();
  auto store = Store::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  r->store = std::move(*store);
  Config c;
  c.http = http;
  c.serving.admin_token = token;
  r->server = std::make_unique<Server>(c, r->store.get(), &r->counters);
  absl::Status s = r->server->Start();
  EXPECT_TRUE(s.ok()) << s;
  return r;
}

int Status(int port, const std::string& path, const std::string& bearer = "",
           std::string* body = nullptr) {
  httplib::Client c("127.0.0.1", port);
  httplib::Headers h;
  if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
  auto res = c.Get(path, h);
  if (!res) return -1;
  if (body != nullptr) *body = res->body;
  return res->status;
}

TEST(ServerTest, AdminApiIsOpenOnLoopbackOnly) {
  testing::TempDir dir;
  {
    auto r = Start(dir.Sub("a"), "127.0.0.1:0", "");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions"), 200);
  }
  {
    // Listening on every interface without a token: the admin API refuses.
    auto r = Start(dir.Sub("b"), "0.0.0.0:0", "");
    std::string body;
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "", &body), 401);
    auto j = ParseJson(body);
    ASSERT_TRUE(j.ok());
    EXPECT_EQ((*j)["error"]["code"], "admin_token_required");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/snapshots"), 401);
    // The public API still answers.
    EXPECT_EQ(Status(r->server->port(), "/healthz"), 200);
  }
  {
    auto r = Start(dir.Sub("c"), "0.0.0.0:0", "s3cret");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions"), 401);
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "wrong"), 401);
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "s3cret"), 200);
  }
}

TEST(ServerTest, ErrorsAreOpenAiErrorObjects) {
  testing::TempDir dir;
  auto r = Start(dir.Sub("s"), "127.0.0.1:0", "");
  std::string body;
  EXPECT_EQ(Status(r->server->port(), "/v1/nothing", "", &body), 404);
  auto j = ParseJson(body);
  ASSERT_TRUE(j.ok()) << body;
  EXPECT_TRUE((*j)["error"].contains("message"));
  httplib::Client c("127.0.0.1", r->server->port());
  auto res = c.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);  // no champion yet
  EXPECT_EQ((*ParseJson(res->body))["error"]["type"], "server_error");
  res = c.Post("/v1/completions", "[1, 2", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  // A second server cannot share the port (no SO_REUSEPORT).
  Config c2;
  c2.http = "127.0.0.1:" + std::to_string(r->server->port());
  Counters counters;
  Server second(c2, r->store.get(), &counters);
  EXPECT_FALSE(second.Start().ok());
}

// ---------------------------------------------------------------- feedback

constexpr char kChampionId[] = "snap-feedback";

using testing::TinyModel;

struct Reply {
  int status = -1;
  Json body;
};

Reply PostRaw(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  auto res = c.Post(path, body, "application/json");
  Reply r;
  if (!res) return r;
  r.status = res->status;
  auto j = ParseJson(res->body);
  r.body = j.ok() ? *j : Json(res->body);
  return r;
}

Reply Post(int port, const std::string& path, const Json& body) {
  return PostRaw(port, path, body.dump());
}

// A completion (or chat completion, when `body` has messages) as the client
// sees it: its id and the generated text, from the JSON answer or, with
// "stream": true, from the SSE chunks.
struct Answer {
  std::string id;
  std::string text;
};

Answer Generate(int port, const Json& body) {
  const bool chat = body.contains("messages");
  const bool stream = body.value("stream", false);
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  auto res = c.Post(chat ? "/v1/chat/completions" : "/v1/completions", body.dump(),
                    "application/json");
  Answer a;
  EXPECT_TRUE(res);
  if (!res) return a;
  EXPECT_EQ(res->status, 200) << res->body;
  if (!stream) {
    auto j = ParseJson(res->body);
    EXPECT_TRUE(j.ok()) << res->body;
    if (!j.ok()) return a;
    a.id = (*j)["id"];
    a.text = chat ? (*j)["choices"][0]["message"]["content"].get<std::string>()
                  : (*j)["choices"][0]["text"].get<std::string>();
    return a;
  }
  bool done = false;
  size_t pos = 0;
  while ((pos = res->body.find("data: ", pos)) != std::string::npos) {
    size_t end = res->body.find("\n\n", pos);
    std::string data = res->body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      break;
    }
    auto j = ParseJson(data);
    EXPECT_TRUE(j.ok()) << data;
    if (!j.ok() || (*j)["choices"].empty()) continue;
    a.id = (*j)["id"];
    const Json& choice = (*j)["choices"][0];
    if (chat) {
      if (choice["delta"].contains("content")) a.text += choice["delta"]["content"].get<std::string>();
    } else {
      a.text += choice["text"].get<std::string>();
    }
  }
  EXPECT_TRUE(done) << res->body;
  return a;
}

class FeedbackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto store = Store::Open(dir_->Sub("store"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = store->release();
    auto model = TinyModel();
    ASSERT_NE(model, nullptr);
    Snapshot snap = testing::ModelSnapshot(*model, kChampionId);
    ASSERT_TRUE(store_->PutSnapshot(snap, {kChampion}).ok());
    auto broker = EmbeddedBroker::Start(0, {}, 1);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = broker->release();
    auto producer = KafkaProducer::Create(broker_->bootstrap());
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = producer->release();
  }
  static void TearDownTestSuite() {
    delete producer_;
    delete broker_;
    delete store_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(producer_, nullptr);
    // A topic of its own per test.
    topic_ = std::string("fb.") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(broker_->CreateTopic(topic_, 1).ok());
  }

  // A config for a server on an ephemeral loopback port writing to topic_.
  Config BaseConfig() const {
    Config c;
    c.http = "127.0.0.1:0";
    c.topic_feedback = topic_;
    c.serving.poll_ms = 60000;
    return c;
  }

  // Starts a server; `producer` may be null (no feedback producer).
  std::unique_ptr<Server> StartServer(const Config& c, KafkaProducer* producer,
                                      int flush_timeout_ms = 10000) {
    auto server = std::make_unique<Server>(c, store_, &counters_);
    if (producer != nullptr) server->set_feedback_producer(producer, flush_timeout_ms);
    absl::Status s = server->Start();
    EXPECT_TRUE(s.ok()) << s;
    return server;
  }

  // The feedback records on topic_, by key (the completion id).
  std::map<std::string, Json> Records(size_t* count = nullptr) {
    auto msgs = ReadWholeTopic(broker_->bootstrap(), topic_, 10000);
    EXPECT_TRUE(msgs.ok()) << msgs.status();
    std::map<std::string, Json> out;
    if (!msgs.ok()) return out;
    if (count != nullptr) *count = msgs->size();
    for (const KafkaMessage& m : *msgs) {
      auto j = ParseJson(m.value);
      EXPECT_TRUE(j.ok()) << m.value;
      if (j.ok()) out[m.key] = *j;
    }
    return out;
  }

  static Json Greedy(const std::string& prompt, int max_tokens) {
    return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
            {"ignore_eos", true}};
  }

  static testing::TempDir* dir_;
  static Store* store_;
  static EmbeddedBroker* broker_;
  static KafkaProducer* producer_;
  Counters counters_;
  std::string topic_;
};

testing::TempDir* FeedbackTest::dir_ = nullptr;
Store* FeedbackTest::store_ = nullptr;
EmbeddedBroker* FeedbackTest::broker_ = nullptr;
KafkaProducer* FeedbackTest::producer_ = nullptr;

TEST_F(FeedbackTest, EveryKindIsWrittenWithWhatTheClientReceived) {
  auto server = StartServer(BaseConfig(), producer_);
  const int port = server->port();
  const std::string prompt = "the ship sailed";
  Answer shorter = Generate(port, Greedy(prompt, 4));
  Answer longer = Generate(port, Greedy(prompt, 8));
  ASSERT_FALSE(shorter.id.empty());
  ASSERT_FALSE(shorter.text.empty());
  ASSERT_NE(shorter.text, longer.text) << "the test needs two different answers";
  Json streamed_body = Greedy("the crew", 6);
  streamed_body["stream"] = true;
  Answer streamed = Generate(port, streamed_body);
  Json echo_body = Greedy(prompt, 4);
  echo_body["echo"] = true;
  Answer echoed = Generate(port, echo_body);
  // Echo returns prompt + the same greedy text; the log keeps only the text.
  ASSERT_EQ(echoed.text, prompt + shorter.text);

  const Json messages = Json::array({{{"role", "user"}, {"content", "hello harbour"}}});
  Json chat_body = {{"messages", messages}, {"max_tokens", 6}, {"temperature", 0},
                    {"ignore_eos", true}};
  Answer chat = Generate(port, chat_body);
  chat_body["max_tokens"] = 2;
  chat_body["stream"] = true;
  Answer chat_streamed = Generate(port, chat_body);
  ASSERT_FALSE(chat.id.empty());
  EXPECT_EQ(chat.id.rfind("chatcmpl-", 0), 0u);
  ASSERT_NE(chat.text, chat_streamed.text);

  auto ok = [&](const Json& body, const std::string& kind) {
    Reply r = Post(port, "/v1/feedback", body);
    EXPECT_EQ(r.status, 200) << r.body.dump();
    EXPECT_EQ(r.body["object"], "feedback");
    EXPECT_EQ(r.body["id"], body["completion_id"]);
    EXPECT_EQ(r.body["topic"], topic_);
    EXPECT_EQ(r.body["kind"], kind);
  };
  ok({{"completion_id", shorter.id}, {"rating", 1}, {"user", "alice"}}, "rating");
  ok({{"completion_id", streamed.id}, {"rating", -1}}, "rating");
  ok({{"completion_id", echoed.id}, {"rating", 1}}, "rating");
  ok({{"completion_id", longer.id}, {"preferred_over", shorter.id}}, "preference");
  ok({{"completion_id", chat.id}, {"correction", "Hello! The harbour is north."},
      {"user", "bob"}},
     "correction");
  ok({{"completion_id", chat_streamed.id}, {"preferred_over", chat.id}}, "preference");

  size_t count = 0;
  auto records = Records(&count);
  ASSERT_EQ(count, 6u);
  ASSERT_EQ(records.size(), 6u);

  const Json& rating = records[shorter.id];
  EXPECT_EQ(rating, Json({{"prompt", prompt},
                          {"response", shorter.text},
                          {"rating", 1},
                          {"completion_id", shorter.id},
                          {"snapshot", kChampionId},
                          {"user", "alice"}}));
  const Json& down = records[streamed.id];
  EXPECT_EQ(down, Json({{"prompt", "the crew"},
                        {"response", streamed.text},
                        {"rating", -1},
                        {"completion_id", streamed.id},
                        {"snapshot", kChampionId}}));
  EXPECT_EQ(records[echoed.id]["response"], shorter.text);
  EXPECT_EQ(records[echoed.id]["prompt"], prompt);
  EXPECT_EQ(records[longer.id], Json({{"prompt", prompt},
                                      {"chosen", longer.text},
                                      {"rejected", shorter.text},
                                      {"completion_id", longer.id},
                                      {"snapshot", kChampionId}}));

  // Chat: the prompt is the rendered default template (serving/README.md),
  // exactly what the tokenizer saw.
  const std::string chat_prompt = "User: hello harbour\n\nAssistant:";
  EXPECT_EQ(records[chat.id], Json({{"prompt", chat_prompt},
                                    {"response", chat.text},
                                    {"correction", "Hello! The harbour is north."},
                                    {"completion_id", chat.id},
                                    {"snapshot", kChampionId},
                                    {"user", "bob"}}));
  EXPECT_EQ(records[chat_streamed.id], Json({{"prompt", chat_prompt},
                                             {"chosen", chat_streamed.text},
                                             {"rejected", chat.text},
                                             {"completion_id", chat_streamed.id},
                                             {"snapshot", kChampionId}}));

  EXPECT_EQ(counters_.Get("streamlm_feedback_received_total", "kind=rating"), 3);
  EXPECT_EQ(counters_.Get("streamlm_feedback_received_total", "kind=preference"), 2);
  EXPECT_EQ(counters_.Get("streamlm_feedback_received_total", "kind=correction"), 1);

  // What the rollback monitor reads: six generations answered, none failed;
  // three ratings (one -1) and two preferences (each: one side chosen, the
  // other rejected = negative); the correction is not counted.
  ModelServingSignals m = server->ModelSignals(kChampionId);
  EXPECT_EQ(m.requests, 6);
  EXPECT_EQ(m.errors, 0);
  EXPECT_EQ(m.feedback, 3 + 2 * 2);
  EXPECT_EQ(m.negative_feedback, 1 + 2);
  ModelServingSignals none = server->ModelSignals("snap-never-served");
  EXPECT_EQ(none.requests + none.errors + none.feedback + none.negative_feedback, 0);
}

// Failed generations count as errors of the model that ran them; requests
// refused before running (a bad body) do not count at all.
TEST_F(FeedbackTest, ModelSignalsCountFailedGenerations) {
  Config c = BaseConfig();
  c.serving.request_timeout_s = 1e-6;  // every request is past its deadline
  auto server = StartServer(c, producer_);
  const int port = server->port();
  for (int i = 0; i < 3; ++i) {
    Reply r = Post(port, "/v1/completions", Greedy("the ship sailed", 8));
    EXPECT_EQ(r.status, 504) << r.body.dump();
  }
  EXPECT_EQ(Post(port, "/v1/completions", Json{{"prompt", 5}}).status, 400);
  ModelServingSignals m = server->ModelSignals(kChampionId);
  EXPECT_EQ(m.requests, 3);
  EXPECT_EQ(m.errors, 3);
  EXPECT_EQ(m.feedback, 0);
}

TEST_F(FeedbackTest, RefusesWhatItCannotUse) {
  auto server = StartServer(BaseConfig(), producer_);
  const int port = server->port();
  Answer a = Generate(port, Greedy("the ship sailed", 4));
  Answer same = Generate(port, Greedy("the ship sailed", 4));  // greedy: identical text
  Answer other_prompt = Generate(port, Greedy("the crew", 4));
  ASSERT_EQ(a.text, same.text);
  ASSERT_FALSE(a.text.empty());

  struct Case {
    Json body;
    int status;
    std::string param;   // "" = null
    std::string code;    // "" = null
    std::string reason;  // streamlm_feedback_api_rejected_total label
  };
  const std::vector<Case> cases = {
      {{{"rating", 1}}, 400, "completion_id", "", "invalid_completion_id"},
      {{{"completion_id", 7}, {"rating", 1}}, 400, "completion_id", "", "invalid_completion_id"},
      {{{"completion_id", a.id}}, 400, "", "", "invalid_kind"},
      {{{"completion_id", a.id}, {"rating", 1}, {"correction", "x"}}, 400, "", "",
       "invalid_kind"},
      {{{"completion_id", a.id}, {"rating", 1}, {"correction", "x"}, {"preferred_over", same.id}},
       400, "", "", "invalid_kind"},
      {{{"completion_id", a.id}, {"rating", 0}}, 400, "rating", "", "invalid_rating"},
      {{{"completion_id", a.id}, {"rating", 2}}, 400, "rating", "", "invalid_rating"},
      {{{"completion_id", a.id}, {"rating", 0.5}}, 400, "rating", "", "invalid_rating"},
      {{{"completion_id", a.id}, {"rating", "1"}}, 400, "rating", "", "invalid_rating"},
      {{{"completion_id", a.id}, {"rating", true}}, 400, "rating", "", "invalid_rating"},
      {{{"completion_id", a.id}, {"rating", 1}, {"user", 42}}, 400, "user", "", "invalid_user"},
      {{{"completion_id", a.id}, {"correction", 3}}, 400, "correction", "",
       "invalid_correction"},
      {{{"completion_id", a.id}, {"correction", ""}}, 400, "correction", "",
       "invalid_correction"},
      {{{"completion_id", a.id}, {"correction", a.text}}, 400, "correction", "",
       "correction_unchanged"},
      {{{"completion_id", a.id}, {"preferred_over", a.id}}, 400, "preferred_over", "",
       "invalid_preferred_over"},
      {{{"completion_id", a.id}, {"preferred_over", same.id}}, 400, "preferred_over", "",
       "identical_responses"},
      {{{"completion_id", a.id}, {"preferred_over", other_prompt.id}}, 400, "preferred_over",
       "", "prompt_mismatch"},
      {{{"completion_id", "cmpl-0-999999"}, {"rating", 1}}, 404, "completion_id",
       "completion_not_found", "completion_not_found"},
      {{{"completion_id", a.id}, {"preferred_over", "cmpl-0-999999"}}, 404, "preferred_over",
       "completion_not_found", "completion_not_found"},
  };
  std::map<std::string, int64_t> expected_reasons;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.dump());
    Reply r = Post(port, "/v1/feedback", c.body);
    EXPECT_EQ(r.status, c.status) << r.body.dump();
    ASSERT_TRUE(r.body.contains("error")) << r.body.dump();
    const Json& e = r.body["error"];
    EXPECT_FALSE(e["message"].get<std::string>().empty());
    EXPECT_EQ(e["type"], "invalid_request_error");
    EXPECT_EQ(e["param"], c.param.empty() ? Json() : Json(c.param));
    EXPECT_EQ(e["code"], c.code.empty() ? Json() : Json(c.code));
    ++expected_reasons[c.reason];
  }
  // Not JSON, not an object.
  EXPECT_EQ(PostRaw(port, "/v1/feedback", "{\"completion_id\": ").status, 400);
  EXPECT_EQ(PostRaw(port, "/v1/feedback", "[1]").status, 400);
  expected_reasons["invalid_json"] += 2;

  EXPECT_EQ(counters_.WithLabels("streamlm_feedback_api_rejected_total"), expected_reasons);
  // Nothing was written.
  size_t count = 99;
  Records(&count);
  EXPECT_EQ(count, 0u);
}

TEST_F(FeedbackTest, ExpiredCompletionIsGone) {
  Config c = BaseConfig();
  c.serving.completion_log_ttl_s = 1.0;
  auto server = StartServer(c, producer_);
  const int port = server->port();
  Answer old = Generate(port, Greedy("the ship sailed", 4));
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  Answer fresh = Generate(port, Greedy("the ship sailed", 6));
  // Within the ttl it is accepted.
  Reply r = Post(port, "/v1/feedback", {{"completion_id", fresh.id}, {"rating", -1}});
  EXPECT_EQ(r.status, 200) << r.body.dump();
  r = Post(port, "/v1/feedback", {{"completion_id", fresh.id}, {"preferred_over", old.id}});
  EXPECT_EQ(r.status, 410) << r.body.dump();
  EXPECT_EQ(r.body["error"]["param"], "preferred_over");
  r = Post(port, "/v1/feedback", {{"completion_id", old.id}, {"rating", 1}});
  EXPECT_EQ(r.status, 410) << r.body.dump();
  EXPECT_EQ(r.body["error"]["code"], "completion_expired");
  EXPECT_EQ(r.body["error"]["param"], "completion_id");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("expired"), std::string::npos);
  EXPECT_EQ(counters_.Get("streamlm_feedback_api_rejected_total", "completion_expired"), 2);
  size_t count = 0;
  auto records = Records(&count);
  EXPECT_EQ(count, 1u);
  EXPECT_EQ(records[fresh.id]["response"], fresh.text);
}

TEST_F(FeedbackTest, OldestCompletionIsForgottenWhenTheLogIsFull) {
  Config c = BaseConfig();
  c.serving.completion_log_size = 2;
  auto server = StartServer(c, producer_);
  const int port = server->port();
  Answer first = Generate(port, Greedy("the ship sailed", 3));
  Answer second = Generate(port, Greedy("the ship sailed", 4));
  Answer third = Generate(port, Greedy("the ship sailed", 5));
  Reply r = Post(port, "/v1/feedback", {{"completion_id", first.id}, {"rating", 1}});
  EXPECT_EQ(r.status, 404) << r.body.dump();
  EXPECT_EQ(r.body["error"]["code"], "completion_not_found");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("unknown"), std::string::npos);
  r = Post(port, "/v1/feedback", {{"completion_id", third.id}, {"preferred_over", second.id}});
  EXPECT_EQ(r.status, 200) << r.body.dump();
  auto records = Records();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[third.id]["chosen"], third.text);
  EXPECT_EQ(records[third.id]["rejected"], second.text);
}

TEST_F(FeedbackTest, OversizedBodyIs413) {
  Config c = BaseConfig();
  c.serving.max_body_bytes = 2048;
  auto server = StartServer(c, producer_);
  const int port = server->port();
  Answer a = Generate(port, Greedy("the ship sailed", 4));
  Reply r = Post(port, "/v1/feedback",
                 {{"completion_id", a.id}, {"correction", std::string(4096, 'x')}});
  EXPECT_EQ(r.status, 413) << r.body.dump();
  EXPECT_EQ(r.body["error"]["code"], "request_too_large");
  EXPECT_EQ(counters_.Get("streamlm_feedback_api_rejected_total", "request_too_large"), 1);
  // Under the limit the same kind of feedback is accepted.
  r = Post(port, "/v1/feedback", {{"completion_id", a.id}, {"correction", std::string(512, 'x')}});
  EXPECT_EQ(r.status, 200) << r.body.dump();
}

TEST_F(FeedbackTest, WithoutProducerOrLogFeedbackIsUnavailable) {
  {
    auto server = StartServer(BaseConfig(), nullptr);
    Answer a = Generate(server->port(), Greedy("the ship sailed", 4));
    Reply r = Post(server->port(), "/v1/feedback", {{"completion_id", a.id}, {"rating", 1}});
    EXPECT_EQ(r.status, 503) << r.body.dump();
    EXPECT_EQ(r.body["error"]["code"], "feedback_unavailable");
  }
  {
    Config c = BaseConfig();
    c.serving.completion_log_size = 0;
    auto server = StartServer(c, producer_);
    Answer a = Generate(server->port(), Greedy("the ship sailed", 4));
    Reply r = Post(server->port(), "/v1/feedback", {{"completion_id", a.id}, {"rating", 1}});
    EXPECT_EQ(r.status, 503) << r.body.dump();
    EXPECT_EQ(r.body["error"]["code"], "feedback_unavailable");
  }
  size_t count = 99;
  Records(&count);
  EXPECT_EQ(count, 0u);
}

TEST_F(FeedbackTest, UndeliverableFeedbackIs503) {
  // Nothing listens on port 1: the record is never confirmed.
  auto dead = KafkaProducer::Create("127.0.0.1:1");
  ASSERT_TRUE(dead.ok()) << dead.status();
  auto server = StartServer(BaseConfig(), dead->get(), /*flush_timeout_ms=*/300);
  Answer a = Generate(server->port(), Greedy("the ship sailed", 4));
  Reply r = Post(server->port(), "/v1/feedback", {{"completion_id", a.id}, {"rating", 1}});
  EXPECT_EQ(r.status, 503) << r.body.dump();
  EXPECT_EQ(r.body["error"]["code"], "feedback_unavailable");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("Kafka"), std::string::npos);
  EXPECT_EQ(counters_.Get("streamlm_feedback_api_rejected_total", "produce_failed"), 1);
  server.reset();
}

// ---------------------------------------------------------------- refresh

// A champion that cannot be loaded (its weights are not a model) is a
// counted warning naming the snapshot, and serving keeps the model it has.
TEST(ServerRefreshTest, FailedRefreshIsCountedAndTheServedModelStays) {
  testing::TempDir dir;
  auto store = Store::Open(dir.Sub("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto model = TinyModel();
  ASSERT_NE(model, nullptr);
  Snapshot good = testing::ModelSnapshot(*model, "snap-good");
  ASSERT_TRUE((*store)->PutSnapshot(good, {kChampion}).ok());
  Config c;
  c.http = "127.0.0.1:0";
  c.serving.poll_ms = 50;
  Counters counters;
  Server server(c, store->get(), &counters);
  ASSERT_TRUE(server.Start().ok());

  Snapshot bad = good;
  bad.meta.id = "snap-corrupt";
  bad.weights = "these bytes are not a safetensors file";
  ASSERT_TRUE((*store)->PutSnapshot(bad, {kChampion}).ok());
  for (int i = 0; i < 200 && counters.Get("streamlm_serving_refresh_failures_total") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GE(counters.Get("streamlm_serving_refresh_failures_total"), 1);
  absl::Status s = server.RefreshChampion();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("snap-corrupt"), std::string::npos) << s;

  std::string body;
  ASSERT_EQ(Status(server.port(), "/v1/models", "", &body), 200);
  auto models = ParseJson(body);
  ASSERT_TRUE(models.ok()) << body;
  ASSERT_EQ((*models)["data"].size(), 1u) << body;
  EXPECT_EQ((*models)["data"][0]["id"], "snap-good") << body;
  server.Stop();
}

}  // namespace
}  // namespace streamlm
