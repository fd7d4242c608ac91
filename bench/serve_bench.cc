#include "bench/serve_bench.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/kafka.h"

namespace streamlm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kLearnerStepsCounter[] = "streamlm_learner_steps_total";
constexpr char kLearnerTokensCounter[] = "streamlm_tokens_trained_total";
constexpr int kPromptPool = 512;

double SecondsSince(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double>(t - t0).count();
}

// One finished request, as a client thread saw it.
struct Sample {
  Clock::time_point done;
  bool ok = false;
  std::string failure;  // HTTP status, "transport:<error>", "bad_body", ...
  std::string error_detail;
  double latency_s = 0;
  double ttft_s = -1;  // streaming only; -1 when no token arrived
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool usage_missing = false;
  std::string model;
};

// The learner's counters at one moment; `ok` false when /metrics did not answer.
struct LearnerReading {
  bool ok = false;
  Clock::time_point at;
  double steps = 0;
  double tokens = 0;
};

LearnerReading ReadLearner(const HostPort& hp) {
  LearnerReading r;
  httplib::Client client(hp.host, hp.port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);
  auto res = client.Get("/metrics");
  r.at = Clock::now();
  if (!res || res->status != 200) return r;
  r.ok = true;
  // A counter that was never incremented is not rendered: zero so far.
  auto steps = PrometheusValue(res->body, kLearnerStepsCounter);
  r.steps = steps.ok() ? *steps : 0;
  auto tokens = PrometheusValue(res->body, kLearnerTokensCounter);
  r.tokens = tokens.ok() ? *tokens : 0;
  return r;
}

// Text of the first choice of one response or SSE chunk (completions:
// choices[0].text; chat: choices[0].message.content or .delta.content).
std::string ChoiceText(const Json& j) {
  if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() ||
      j["choices"].empty() || !j["choices"][0].is_object()) {
    return "";
  }
  const Json& c = j["choices"][0];
  for (const char* field : {"delta", "message"}) {
    if (c.contains(field) && c[field].is_object()) {
      const Json& m = c[field];
      if (m.contains("content") && m["content"].is_string()) return m["content"];
    }
  }
  if (c.contains("text") && c["text"].is_string()) return c["text"];
  return "";
}

bool ReadUsage(const Json& j, Sample* s) {
  if (!j.is_object() || !j.contains("usage") || !j["usage"].is_object()) return false;
  const Json& u = j["usage"];
  if (!u.contains("completion_tokens") || !u["completion_tokens"].is_number_integer()) {
    return false;
  }
  s->completion_tokens = u["completion_tokens"].get<int64_t>();
  if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) {
    s->prompt_tokens = u["prompt_tokens"].get<int64_t>();
  }
  return true;
}

std::string RequestBody(const ServeBenchOptions& o, const std::string& prompt) {
  Json body = {{"max_tokens", o.max_tokens}, {"temperature", o.temperature}};
  if (o.endpoint == "chat") {
    body["messages"] = Json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    body["prompt"] = prompt;
  }
  if (o.stream) {
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
  }
  return body.dump();
}

// Sends one request on `client` and describes how it went.
Sample SendOne(httplib::Client& client, const ServeBenchOptions& o, const std::string& path,
               const std::string& prompt) {
  Sample s;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = RequestBody(o, prompt);
  req.set_header("Content-Type", "application/json");
  if (!o.api_key.empty()) req.set_header("Authorization", "Bearer " + o.api_key);
  const Clock::time_point start = Clock::now();
  std::string sse_buffer, raw_body;
  SseEvents sse;
  if (o.stream) {
    req.set_header("Accept", "text/event-stream");
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (raw_body.size() < 2000) raw_body.append(data, std::min<size_t>(n, 2000));
      sse_buffer.append(data, n);
      size_t before = sse.events.size();
      ConsumeSse(&sse_buffer, &sse);
      for (size_t i = before; i < sse.events.size() && s.ttft_s < 0; ++i) {
        if (!ChoiceText(sse.events[i]).empty()) s.ttft_s = SecondsSince(start, Clock::now());
      }
      return true;
    };
  }
  auto res = client.send(req);
  s.done = Clock::now();
  s.latency_s = SecondsSince(start, s.done);
  if (!res) {
    s.failure = "transport:" + httplib::to_string(res.error());
    return s;
  }
  const std::string& body = o.stream ? raw_body : res->body;
  if (res->status != 200) {
    s.failure = std::to_string(res->status);
    s.error_detail = Utf8Prefix(body, 300);
    return s;
  }
  if (!o.stream) {
    auto j = ParseJson(res->body);
    if (!j.ok() || !ReadUsage(*j, &s)) {
      s.failure = "bad_body";
      s.error_detail = Utf8Prefix(res->body, 300);
      return s;
    }
    if (j->contains("model") && (*j)["model"].is_string()) s.model = (*j)["model"];
    s.ok = true;
    return s;
  }
  if (!sse.done || sse.malformed > 0) {
    s.failure = sse.done ? "bad_sse_event" : "stream_incomplete";
    s.error_detail = Utf8Prefix(raw_body, 300);
    return s;
  }
  int64_t content_events = 0;
  bool have_usage = false;
  for (const Json& e : sse.events) {
    if (!ChoiceText(e).empty()) ++content_events;
    if (ReadUsage(e, &s)) have_usage = true;
    if (s.model.empty() && e.is_object() && e.contains("model") && e["model"].is_string()) {
      s.model = e["model"];
    }
  }
  if (!have_usage) {  // the server ignored stream_options.include_usage
    s.usage_missing = true;
    s.completion_tokens = content_events;
  }
  s.ok = true;
  return s;
}

Json LatencyJson(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return {{"p50", Quantile(v, 0.5)},
          {"p90", Quantile(v, 0.9)},
          {"p99", Quantile(v, 0.99)},
          {"mean", v.empty() ? 0.0 : sum / static_cast<double>(v.size())}};
}

Json LearnerJson(const LearnerReading& before, const LearnerReading& after) {
  if (!before.ok || !after.ok) {
    return {{"learner_steps", nullptr}, {"learner_steps_per_s", nullptr},
            {"learner_tokens_per_s", nullptr}};
  }
  double dt = std::max(1e-9, SecondsSince(before.at, after.at));
  return {{"learner_steps", after.steps - before.steps},
          {"learner_steps_per_s", (after.steps - before.steps) / dt},
          {"learner_tokens_per_s", (after.tokens - before.tokens) / dt}};
}

Json RunIdleLevel(const HostPort& hp, double seconds) {
  LearnerReading before = ReadLearner(hp);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  LearnerReading after = ReadLearner(hp);
  Json level = {{"concurrency", 0}, {"duration_s", seconds}, {"requests", 0}, {"failures", 0}};
  level.update(LearnerJson(before, after));
  return level;
}

Json RunLevel(const HostPort& hp, const ServeBenchOptions& o, int concurrency,
              const std::vector<std::string>& prompts) {
  const std::string path = o.endpoint == "chat" ? "/v1/chat/completions" : "/v1/completions";
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point warm_end = t0 + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(o.warmup_s));
  const Clock::time_point end = warm_end + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(o.duration_s));
  std::mutex mu;
  std::vector<Sample> samples;  // GUARDED_BY(mu)
  std::vector<std::thread> clients;
  for (int k = 0; k < concurrency; ++k) {
    clients.emplace_back([&, k] {
      httplib::Client client(hp.host, hp.port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // else Nagle delays the request body
      client.set_connection_timeout(10, 0);
      client.set_read_timeout(o.request_timeout_s, 0);
      client.set_write_timeout(o.request_timeout_s, 0);
      // Clients start at different places in the prompt pool.
      size_t next = static_cast<size_t>(k) * (prompts.size() / std::max(1, concurrency));
      while (Clock::now() < end) {
        Sample s = SendOne(client, o, path, prompts[next++ % prompts.size()]);
        std::lock_guard<std::mutex> lock(mu);
        samples.push_back(std::move(s));
      }
    });
  }
  std::this_thread::sleep_until(warm_end);
  LearnerReading before = ReadLearner(hp);
  std::this_thread::sleep_until(end);
  LearnerReading after = ReadLearner(hp);
  for (std::thread& t : clients) t.join();

  // Requests that finished inside the measured window count, wherever they began.
  int64_t requests = 0, failures = 0, prompt_tokens = 0, completion_tokens = 0,
          usage_missing = 0;
  std::map<std::string, int64_t> failures_by, models;
  std::string first_error;
  std::vector<double> latency, ttft;
  for (const Sample& s : samples) {
    if (s.done < warm_end || s.done > end) continue;
    ++requests;
    if (!s.ok) {
      ++failures;
      ++failures_by[s.failure];
      if (first_error.empty()) first_error = s.failure + ": " + s.error_detail;
      continue;
    }
    prompt_tokens += s.prompt_tokens;
    completion_tokens += s.completion_tokens;
    usage_missing += s.usage_missing ? 1 : 0;
    latency.push_back(s.latency_s);
    if (s.ttft_s >= 0) ttft.push_back(s.ttft_s);
    if (!s.model.empty()) ++models[s.model];
  }
  const double d = std::max(1e-9, o.duration_s);
  Json level = {{"concurrency", concurrency},
                {"duration_s", o.duration_s},
                {"requests", requests},
                {"failures", failures},
                {"failures_by", Json(failures_by)},
                {"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion_tokens},
                {"completion_tokens_per_s", static_cast<double>(completion_tokens) / d},
                {"requests_per_s", static_cast<double>(requests - failures) / d},
                {"latency_s", LatencyJson(latency)},
                {"models", Json(models)}};
  if (o.stream) {
    level["ttft_s"] = {{"p50", Quantile(ttft, 0.5)}, {"p90", Quantile(ttft, 0.9)}};
    level["usage_missing"] = usage_missing;
  }
  if (!first_error.empty()) level["first_error"] = first_error;
  level.update(LearnerJson(before, after));
  return level;
}

const Json* FindLevel(const Json& levels, int concurrency) {
  for (const Json& l : levels) {
    if (l["concurrency"] == concurrency) return &l;
  }
  return nullptr;
}

// numerator / denominator, or null when either is missing or the denominator is 0.
Json Ratio(const Json* a, const Json* b, const char* field, const char* sub = nullptr) {
  if (a == nullptr || b == nullptr) return nullptr;
  const Json& x = sub ? (*a)[field][sub] : (*a)[field];
  const Json& y = sub ? (*b)[field][sub] : (*b)[field];
  if (!x.is_number() || !y.is_number() || y.get<double>() == 0) return nullptr;
  return x.get<double>() / y.get<double>();
}

}  // namespace

absl::StatusOr<HostPort> ParseHttpUrl(const std::string& url) {
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return absl::InvalidArgumentError("--url must look like http://HOST:PORT, got '" + url + "'");
  }
  rest = rest.substr(0, rest.find('/'));
  size_t colon = rest.rfind(':');
  HostPort hp;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(rest.substr(colon + 1), &hp.port) || hp.port <= 0 || hp.port > 65535) {
    return absl::InvalidArgumentError("--url must look like http://HOST:PORT, got '" + url + "'");
  }
  hp.host = std::string(rest.substr(0, colon));
  return hp;
}

absl::StatusOr<std::vector<int>> ParseConcurrencyList(const std::string& s) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1 || n > 4096) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--concurrency: expected a comma-separated list of integers >= 1, got '", s, "'"));
    }
    out.push_back(n);
  }
  if (out.empty()) return absl::InvalidArgumentError("--concurrency: no levels given");
  return out;
}

std::vector<std::string> BuildPrompts(const std::string& corpus, int words, int count,
                                      uint64_t seed) {
  std::vector<absl::string_view> all = absl::StrSplit(corpus, absl::ByAnyChar(" \t\r\n"),
                                                      absl::SkipEmpty());
  std::vector<std::string> out;
  if (all.empty() || words < 1) return out;
  std::mt19937_64 rng(seed);
  const size_t n = std::min(all.size(), static_cast<size_t>(words));
  for (int i = 0; i < count; ++i) {
    size_t start = static_cast<size_t>(rng() % (all.size() - n + 1));
    std::string p;
    for (size_t w = start; w < start + n; ++w) {
      if (!p.empty()) p += ' ';
      p.append(all[w].data(), all[w].size());
    }
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<double> PrometheusValue(const std::string& text, const std::string& name) {
  double sum = 0;
  bool found = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (!absl::ConsumePrefix(&line, name)) continue;
    if (line.empty() || (line[0] != ' ' && line[0] != '{')) continue;  // a longer name
    if (line[0] == '{') {
      size_t close = line.find('}');
      if (close == absl::string_view::npos) continue;
      line.remove_prefix(close + 1);
    }
    line = absl::StripAsciiWhitespace(line);
    line = line.substr(0, line.find(' '));  // an optional timestamp follows
    double v = 0;
    if (!absl::SimpleAtod(line, &v)) continue;
    sum += v;
    found = true;
  }
  if (!found) return absl::NotFoundError("no sample of " + name + " in /metrics");
  return sum;
}

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

void ConsumeSse(std::string* buffer, SseEvents* out) {
  size_t line_start = 0;
  while (true) {
    size_t nl = buffer->find('\n', line_start);
    if (nl == std::string::npos) break;
    absl::string_view line(buffer->data() + line_start, nl - line_start);
    line_start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!absl::ConsumePrefix(&line, "data:")) continue;  // blank, comment, event:, id:
    line = absl::StripLeadingAsciiWhitespace(line);
    if (line == "[DONE]") {
      out->done = true;
      continue;
    }
    auto j = ParseJson(std::string_view(line.data(), line.size()));
    if (j.ok()) {
      out->events.push_back(std::move(*j));
    } else {
      ++out->malformed;
    }
  }
  buffer->erase(0, line_start);
}

std::vector<std::string> CorpusRecords(const std::string& corpus, size_t first_document,
                                       size_t record_bytes, size_t total_bytes) {
  std::vector<std::string> documents = absl::StrSplit(corpus, "\n\n", absl::SkipWhitespace());
  std::vector<std::string> out;
  if (documents.empty() || record_bytes == 0) return out;
  size_t produced = 0;
  for (size_t i = 0; i < documents.size() && produced < total_bytes; ++i) {
    const std::string& doc = documents[(first_document + i) % documents.size()];
    std::string record;
    for (absl::string_view line : absl::StrSplit(doc, '\n', absl::SkipWhitespace())) {
      if (!record.empty()) record += '\n';
      record.append(line.data(), line.size());
      if (record.size() >= record_bytes) {
        produced += record.size();
        out.push_back(std::move(record));
        record.clear();
        if (produced >= total_bytes) break;
      }
    }
    if (!record.empty() && produced < total_bytes) {
      produced += record.size();
      out.push_back(std::move(record));
    }
  }
  return out;
}

namespace {

// Produces corpus text for the server's learner; returns {"records", "bytes", "topic"}.
absl::StatusOr<Json> FeedLearner(const ServeBenchOptions& o, const std::string& corpus) {
  auto producer = KafkaProducer::Create(o.feed_kafka);
  if (!producer.ok()) return producer.status();
  // A different stretch of the corpus on each run, so a second run against
  // the same server is not all near-duplicates of the first.
  const int64_t now_ms = NowMs();
  std::vector<std::string> records =
      CorpusRecords(corpus, static_cast<size_t>(now_ms / 1000), 1500,
                    static_cast<size_t>(std::max<int64_t>(0, o.feed_bytes)));
  int64_t bytes = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    Json value = {{"text", records[i]}, {"id", absl::StrCat("bench-serve-", now_ms, "-", i)},
                  {"source", "streamlm bench serve"}};
    absl::Status s = (*producer)->Produce(o.feed_topic, "", value.dump());
    if (!s.ok()) return s;
    bytes += static_cast<int64_t>(records[i].size());
  }
  absl::Status s = (*producer)->Flush(30000);
  if (!s.ok()) return s;
  return Json{{"topic", o.feed_topic}, {"records", records.size()}, {"bytes", bytes}};
}

}  // namespace

absl::StatusOr<Json> RunServeBench(const ServeBenchOptions& o) {
  auto hp = ParseHttpUrl(o.url);
  if (!hp.ok()) return hp.status();
  if (o.endpoint != "completions" && o.endpoint != "chat") {
    return absl::InvalidArgumentError("--endpoint must be 'completions' or 'chat', got '" +
                                      o.endpoint + "'");
  }
  if (o.duration_s <= 0 || o.warmup_s < 0 || o.max_tokens < 1 || o.prompt_tokens < 1) {
    return absl::InvalidArgumentError(
        "--duration-s must be > 0, --warmup-s >= 0, --max-tokens and --prompt-tokens >= 1");
  }
  auto corpus = ReadFileToString(o.corpus_path);
  if (!corpus.ok()) return corpus.status();
  std::vector<std::string> prompts = BuildPrompts(*corpus, o.prompt_tokens, kPromptPool, o.seed);
  if (prompts.empty()) {
    return absl::InvalidArgumentError("no words in the prompt corpus " + o.corpus_path);
  }
  {
    httplib::Client probe(hp->host, hp->port);
    probe.set_connection_timeout(5, 0);
    auto res = probe.Get("/healthz");
    if (!res) {
      return absl::UnavailableError(absl::StrCat("no server at ", o.url, " (GET /healthz: ",
                                                 httplib::to_string(res.error()), ")"));
    }
  }
  Json fed = nullptr;
  if (!o.feed_kafka.empty()) {
    auto f = FeedLearner(o, *corpus);
    if (!f.ok()) return f.status();
    fed = *f;
  }
  Json levels = Json::array();
  if (o.learner_idle_s > 0) levels.push_back(RunIdleLevel(*hp, o.learner_idle_s));
  for (int c : o.concurrency) levels.push_back(RunLevel(*hp, o, c, prompts));

  Json ratios = Json::object();
  const Json* c1 = FindLevel(levels, 1);
  const Json* idle = FindLevel(levels, 0);
  for (const Json& l : levels) {
    int c = l["concurrency"];
    if (c > 1 && c1 != nullptr) {
      ratios[absl::StrCat("tokens_per_s_c", c, "_vs_c1")] =
          Ratio(&l, c1, "completion_tokens_per_s");
      ratios[absl::StrCat("p50_latency_c", c, "_vs_c1")] = Ratio(&l, c1, "latency_s", "p50");
    }
    if (c > 0 && idle != nullptr) {
      ratios[absl::StrCat("learner_steps_c", c, "_vs_idle")] =
          Ratio(&l, idle, "learner_steps_per_s");
    }
  }
  return Json{{"bench", "serve"},
              {"url", o.url},
              {"endpoint", o.endpoint},
              {"stream", o.stream},
              {"prompt_tokens", o.prompt_tokens},
              {"max_tokens", o.max_tokens},
              {"temperature", o.temperature},
              {"warmup_s", o.warmup_s},
              {"fed_learner", fed},
              {"levels", levels},
              {"ratios", ratios}};
}

}  // namespace streamlm
