// deploy/ checked against the binary (issue 11): the files parse; every
// command, flag, config key, environment variable, port and probe path they
// use exists in `streamlm` and agrees across files. Nothing here starts a
// container: deploy/README.md says what was run and what was not.
#include <cstdio>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"
#include "yaml-cpp/yaml.h"

namespace streamlm {
namespace {

std::string Deploy(const std::string& name) { return testing::SourceDir() + "/deploy/" + name; }

// `streamlm SUB --help`, whose output lists every flag SUB takes.
std::string Help(const std::string& sub) {
  static std::map<std::string, std::string> cache;
  if (cache.count(sub)) return cache[sub];
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> p(
      popen((testing::StreamlmBinary() + " " + sub + " --help 2>&1").c_str(), "r"), pclose);
  char buf[4096];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p.get())) > 0) out.append(buf, n);
  return cache[sub] = out;
}

std::set<std::string> ConfigEnvNames() {
  std::set<std::string> names;
  for (const ConfigKey& k : ConfigKeys()) names.insert(EnvNameForKey(k.name));
  return names;
}

// The value after `flag` in `args` ("" when absent).
std::string FlagValue(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) return args[i + 1];
  }
  return "";
}

int PortOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? -1 : std::stoi(host_port.substr(colon + 1));
}

// A StreamLM command line: a subcommand that exists, and flags it takes.
void CheckCommand(const std::vector<std::string>& args, const std::string& where) {
  ASSERT_FALSE(args.empty()) << where;
  const std::string& sub = args[0];
  EXPECT_TRUE(sub == "run" || sub == "serve" || sub == "learn" || sub == "evaluate")
      << where << ": subcommand " << sub;
  const std::string help = Help(sub);
  ASSERT_TRUE(absl::StrContains(help, "Usage:")) << where << ": " << help;
  for (const std::string& a : args) {
    if (!absl::StartsWith(a, "--")) continue;
    EXPECT_TRUE(std::regex_search(help, std::regex("\\s" + a + "[ ,]")))
        << where << ": `streamlm " << sub << "` has no flag " << a;
  }
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  for (const auto& n : seq) out.push_back(n.as<std::string>());
  return out;
}

TEST(DeployTest, TheConfigFilesSetOnlyKeysTheBinaryKnows) {
  Config c;
  absl::Status s = ApplyYamlFile(c, Deploy("streamlm.yaml"));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(PortOf(c.http), 8080);
  // The Kubernetes ConfigMap carries the same file.
  bool found = false;
  for (const YAML::Node& doc : YAML::LoadAllFromFile(Deploy("k8s/streamlm.yaml"))) {
    if (doc["kind"].as<std::string>() != "ConfigMap") continue;
    Config k;
    s = ApplyYamlText(k, doc["data"]["streamlm.yaml"].as<std::string>(), "the ConfigMap");
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(k.http, c.http);
    EXPECT_EQ(k.data_dir, c.data_dir);
    found = true;
  }
  EXPECT_TRUE(found);
}

TEST(DeployTest, ComposeUsesKraftKafkaAndCommandsFlagsPortsTheBinaryHas) {
  const YAML::Node compose = YAML::LoadFile(Deploy("compose.yaml"));
  const YAML::Node services = compose["services"];
  ASSERT_TRUE(services.IsMap());
  // Apache Kafka's official image, in KRaft mode (no ZooKeeper service).
  EXPECT_TRUE(absl::StartsWith(services["kafka"]["image"].as<std::string>(), "apache/kafka:"));
  EXPECT_TRUE(absl::StrContains(
      services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as<std::string>(), "controller"));
  EXPECT_FALSE(services["zookeeper"]);
  // The topics StreamLM uses are created.
  const std::string topics = Strings(services["topics"]["entrypoint"]).back();
  const Config defaults;
  for (const std::string& t :
       {defaults.topic_text, defaults.topic_feedback, defaults.topic_rejects,
        defaults.topic_decisions, defaults.topic_candidates, defaults.topic_verdicts}) {
    EXPECT_TRUE(absl::StrContains(topics, t)) << t;
  }
  const std::set<std::string> env_names = ConfigEnvNames();
  int learners = 0, evaluators = 0, replicas = 0;
  for (const auto& entry : services) {
    const std::string name = entry.first.as<std::string>();
    const YAML::Node svc = entry.second;
    if (!svc["image"] || !absl::StartsWith(svc["image"].as<std::string>(), "streamlm")) continue;
    const std::vector<std::string> args = Strings(svc["command"]);
    CheckCommand(args, "compose service " + name);
    const int port = PortOf(FlagValue(args, "--http"));
    EXPECT_EQ(port, 8080) << name;
    EXPECT_EQ(FlagValue(args, "--kafka"), "kafka:9092") << name;
    // The config file it names is mounted there.
    bool mounted = false;
    for (const std::string& v : Strings(svc["volumes"])) {
      mounted |= absl::EndsWith(v, ":" + FlagValue(args, "--config") + ":ro");
    }
    EXPECT_TRUE(mounted) << name;
    for (const auto& e : svc["environment"]) {
      EXPECT_TRUE(env_names.count(e.first.as<std::string>())) << name << ": " << e.first;
    }
    const std::string probe = Strings(svc["healthcheck"]["test"]).back();
    EXPECT_TRUE(probe == absl::StrCat("http://127.0.0.1:", port, "/healthz") ||
                probe == absl::StrCat("http://127.0.0.1:", port, "/readyz"))
        << name << ": " << probe;
    if (args[0] == "learn") ++learners;
    if (args[0] == "evaluate") {
      ++evaluators;
      // It follows the learner's store: the same volume, the same directory.
      const std::string learner_dir =
          FlagValue(Strings(services["learner"]["command"]), "--data-dir");
      EXPECT_EQ(FlagValue(args, "--data-dir"), learner_dir);
      bool shared = false;
      for (const std::string& v : Strings(svc["volumes"])) {
        for (const std::string& lv : Strings(services["learner"]["volumes"])) {
          shared |= v == lv && absl::EndsWith(v, ":" + learner_dir);
        }
      }
      EXPECT_TRUE(shared) << "the evaluator does not mount the learner's store volume";
    }
    if (args[0] == "serve") {
      ++replicas;
      // Replicas fetch from a service of this file, on its --http port.
      const std::string from = FlagValue(args, "--snapshots-from");
      std::smatch m;
      ASSERT_TRUE(std::regex_match(from, m, std::regex(R"(http://([^:]+):(\d+))"))) << from;
      ASSERT_TRUE(services[m[1].str()]) << from;
      EXPECT_EQ(PortOf(FlagValue(Strings(services[m[1].str()]["command"]), "--http")),
                std::stoi(m[2].str()));
    }
  }
  EXPECT_EQ(learners, 1);
  EXPECT_EQ(evaluators, 1);
  EXPECT_EQ(replicas, 2);
  // The load balancer's upstreams are the replicas, on their port.
  auto nginx = ReadFileToString(Deploy("nginx.conf"));
  ASSERT_TRUE(nginx.ok());
  std::regex upstream(R"(server (serve-\d+):(\d+))");
  int upstreams = 0;
  for (std::sregex_iterator it(nginx->begin(), nginx->end(), upstream), end; it != end; ++it) {
    ++upstreams;
    const std::string svc = (*it)[1].str();
    ASSERT_TRUE(services[svc]) << svc;
    EXPECT_EQ(Strings(services[svc]["command"])[0], "serve");
    EXPECT_EQ(std::stoi((*it)[2].str()), 8080);
  }
  EXPECT_EQ(upstreams, replicas);
}

TEST(DeployTest, KubernetesManifestsUseCommandsProbesAndPortsTheBinaryHas) {
  const std::set<std::string> env_names = ConfigEnvNames();
  std::map<std::string, YAML::Node> by_name;
  std::vector<YAML::Node> workloads;
  for (const YAML::Node& doc : YAML::LoadAllFromFile(Deploy("k8s/streamlm.yaml"))) {
    by_name[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] =
        doc;
    const std::string kind = doc["kind"].as<std::string>();
    if (kind == "StatefulSet" || kind == "Deployment") workloads.push_back(doc);
  }
  ASSERT_TRUE(by_name.count("StatefulSet/streamlm-learner"));
  ASSERT_TRUE(by_name.count("Deployment/streamlm-serve"));
  ASSERT_TRUE(by_name.count("ConfigMap/streamlm-config"));
  // The learner keeps its store on a volume of its own; the evaluator, in
  // the same pod, follows it there.
  EXPECT_TRUE(by_name["StatefulSet/streamlm-learner"]["spec"]["volumeClaimTemplates"]);
  EXPECT_EQ(by_name["StatefulSet/streamlm-learner"]["spec"]["replicas"].as<int>(), 1);
  {
    std::map<std::string, std::string> data_dirs;
    for (const YAML::Node& c :
         by_name["StatefulSet/streamlm-learner"]["spec"]["template"]["spec"]["containers"]) {
      const std::vector<std::string> args = Strings(c["args"]);
      data_dirs[args[0]] = FlagValue(args, "--data-dir");
    }
    ASSERT_TRUE(data_dirs.count("learn") && data_dirs.count("evaluate"));
    EXPECT_EQ(data_dirs["learn"], data_dirs["evaluate"]);
  }
  for (const YAML::Node& w : workloads) {
    const std::string name = w["metadata"]["name"].as<std::string>();
    const YAML::Node pod = w["spec"]["template"]["spec"];
    std::set<int> pod_ports;  // containers of a pod share its network
    for (const YAML::Node& c : pod["containers"]) {
      const std::vector<std::string> args = Strings(c["args"]);
      CheckCommand(args, name);
      const int port = PortOf(FlagValue(args, "--http"));
      EXPECT_TRUE(pod_ports.insert(port).second) << name << ": two containers on port " << port;
      EXPECT_EQ(c["ports"][0]["containerPort"].as<int>(), port) << name;
      EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz") << name;
      EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz") << name;
      EXPECT_EQ(c["readinessProbe"]["httpGet"]["port"].as<int>(), port) << name;
      EXPECT_EQ(c["livenessProbe"]["httpGet"]["port"].as<int>(), port) << name;
      for (const YAML::Node& e : c["env"]) {
        EXPECT_TRUE(env_names.count(e["name"].as<std::string>())) << name << ": " << e["name"];
      }
      // --config is where the ConfigMap is mounted, and --data-dir a volume.
      std::set<std::string> mounts;
      for (const YAML::Node& m : c["volumeMounts"]) mounts.insert(m["mountPath"].as<std::string>());
      EXPECT_TRUE(mounts.count("/etc/streamlm")) << name;
      EXPECT_EQ(FlagValue(args, "--config"), "/etc/streamlm/streamlm.yaml") << name;
      EXPECT_TRUE(mounts.count(FlagValue(args, "--data-dir"))) << name;
      if (args[0] == "serve") {
        // streamlm-learner-0.streamlm-learner: the StatefulSet's first pod
        // through its headless Service, on the learner's port.
        std::smatch m;
        const std::string from = FlagValue(args, "--snapshots-from");
        ASSERT_TRUE(std::regex_match(from, m, std::regex(R"(http://([^.]+)-0\.([^:]+):(\d+))")))
            << from;
        ASSERT_TRUE(by_name.count("StatefulSet/" + m[1].str())) << from;
        EXPECT_EQ(by_name["StatefulSet/" + m[1].str()]["spec"]["serviceName"].as<std::string>(),
                  m[2].str());
        ASSERT_TRUE(by_name.count("Service/" + m[2].str())) << from;
        EXPECT_EQ(std::stoi(m[3].str()), 8080);
      }
    }
  }
  // Services point at ports the pods listen on.
  for (const auto& [key, doc] : by_name) {
    if (!absl::StartsWith(key, "Service/")) continue;
    EXPECT_EQ(doc["spec"]["ports"][0]["targetPort"].as<int>(), 8080) << key;
  }
}

TEST(DeployTest, TheDockerfileBuildsWithTheSetUpScriptAndRunsTheBinaryItBuilt) {
  auto text = ReadFileToString(Deploy("Dockerfile"));
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<std::string> from;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::StartsWith(line, "FROM ")) from.emplace_back(line);
  }
  ASSERT_EQ(from.size(), 2u) << "a multi-stage build";
  EXPECT_TRUE(absl::StartsWith(from[0], "FROM debian:12 ")) << from[0];
  EXPECT_TRUE(absl::StartsWith(from[1], "FROM debian:12")) << from[1];
  EXPECT_TRUE(absl::StrContains(*text, "RUN bash scripts/setup.sh"));
  // What it copies out of the build stage exists after scripts/setup.sh.
  EXPECT_TRUE(absl::StrContains(*text, "COPY --from=build /src/build/apps/streamlm "
                                       "/usr/local/bin/streamlm"));
  // scripts/setup.sh builds into build/, and the binary sits at apps/streamlm
  // in a build tree (this one may be a sanitized build-KIND/).
  auto setup = ReadFileToString(testing::SourceDir() + "/scripts/setup.sh");
  ASSERT_TRUE(setup.ok()) << setup.status();
  EXPECT_TRUE(absl::StrContains(*setup, "cmake -S . -B build ")) << "setup.sh configures build/";
  EXPECT_TRUE(absl::EndsWith(testing::StreamlmBinary(), "/apps/streamlm"))
      << testing::StreamlmBinary();
  Config defaults;
  for (const std::string& corpus : defaults.bootstrap.corpus) {
    EXPECT_TRUE(ReadFileToString(testing::SourceDir() + "/" + corpus).ok()) << corpus;
    EXPECT_TRUE(absl::StartsWith(corpus, "data/")) << "COPY /src/data covers " << corpus;
  }
  EXPECT_TRUE(absl::StrContains(*text, "ENTRYPOINT [\"/usr/local/bin/streamlm\"]"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*text, m, std::regex(R"re(CMD \["(\w+)")re")));
  EXPECT_TRUE(absl::StrContains(Help(m[1].str()), "Usage:")) << m[1].str();
}

}  // namespace
}  // namespace streamlm
