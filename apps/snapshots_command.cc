// `streamlm snapshots`: stored snapshots with lineage and aliases.
#include "apps/commands.h"

#include <cstdio>
#include <map>
#include <string>

#include "apps/command_util.h"
#include "common/json_util.h"
#include "store/store.h"

namespace streamlm {

int RunSnapshots(const Config& c, bool json) {
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto snaps = (*store)->ListSnapshots();
  if (!snaps.ok()) return Fail(snaps.status());
  std::map<std::string, std::string> aliases;
  for (const char* a : {kChampion, kCandidate, kPrevious}) {
    auto id = (*store)->GetAlias(a);
    if (id.ok()) aliases[*id] += aliases[*id].empty() ? a : std::string(",") + a;
  }
  if (json) {
    Json out = Json::array();
    for (const SnapshotMeta& m : *snaps) {
      Json j = SnapshotMetaToJson(m);
      j["aliases"] = aliases[m.id];
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-12s %-24s %-10s %-12s %-8s %-10s %s\n", "ID", "CREATED", "ORIGIN", "PARENT",
              "STEP", "RECORDS", "ALIASES");
  for (const SnapshotMeta& m : *snaps) {
    std::printf("%-12s %-24s %-10s %-12s %-8lld %-10lld %s\n", m.id.c_str(),
                FormatTimeMs(m.created_ms).c_str(), m.origin.c_str(),
                m.lineage.parent.empty() ? "-" : m.lineage.parent.c_str(),
                static_cast<long long>(m.lineage.step),
                static_cast<long long>(m.lineage.records_trained), aliases[m.id].c_str());
  }
  return 0;
}

}  // namespace streamlm
