#include "store/store.h"

#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace streamlm {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(what + ": not found");
  return absl::InternalError(absl::StrCat("store: ", what, ": ", s.ToString()));
}

std::string SnapKey(const std::string& id, const std::string& part) {
  return absl::StrCat("snap/", id, "/", part);
}

std::string ChunkKey(const std::string& prefix, size_t n) {
  return absl::StrFormat("%s%08d", prefix, n);
}

uint32_t Crc(const char* data, size_t n) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

void PutChunks(const std::string& prefix, const std::string& bytes,
               rocksdb::WriteBatch* batch) {
  size_t n = 0;
  for (size_t off = 0; off < bytes.size() || n == 0; off += kChunkBytes, ++n) {
    size_t len = std::min(kChunkBytes, bytes.size() - std::min(off, bytes.size()));
    uint32_t crc = Crc(bytes.data() + off, len);
    std::string value(4, '\0');
    std::memcpy(value.data(), &crc, 4);
    value.append(bytes.data() + off, len);
    batch->Put(ChunkKey(prefix, n), value);
    if (len == 0) break;
  }
}

void DeletePrefix(rocksdb::DB* db, const std::string& prefix,
                  rocksdb::WriteBatch* batch) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    batch->Delete(it->key());
  }
}

}  // namespace

Json LineageToJson(const Lineage& l) {
  Json ranges = Json::array();
  for (const OffsetRange& r : l.ranges) {
    ranges.push_back({{"topic", r.topic},
                      {"partition", r.partition},
                      {"begin", r.begin},
                      {"end", r.end}});
  }
  return {{"parent", l.parent},
          {"ranges", ranges},
          {"records_trained", l.records_trained},
          {"records_heldout", l.records_heldout},
          {"records_rejected", l.records_rejected},
          {"tokens_trained", l.tokens_trained},
          {"step", l.step},
          {"oldest_record_ms", l.oldest_record_ms},
          {"newest_record_ms", l.newest_record_ms}};
}

Lineage LineageFromJson(const Json& j) {
  Lineage l;
  l.parent = j.value("parent", "");
  if (j.contains("ranges")) {
    for (const Json& r : j["ranges"]) {
      l.ranges.push_back({r.value("topic", ""), r.value("partition", 0),
                          r.value("begin", int64_t{0}), r.value("end", int64_t{0})});
    }
  }
  l.records_trained = j.value("records_trained", int64_t{0});
  l.records_heldout = j.value("records_heldout", int64_t{0});
  l.records_rejected = j.value("records_rejected", int64_t{0});
  l.tokens_trained = j.value("tokens_trained", int64_t{0});
  l.step = j.value("step", int64_t{0});
  l.oldest_record_ms = j.value("oldest_record_ms", int64_t{0});
  l.newest_record_ms = j.value("newest_record_ms", int64_t{0});
  return l;
}

Json SnapshotMetaToJson(const SnapshotMeta& m) {
  return {{"id", m.id},
          {"created_ms", m.created_ms},
          {"origin", m.origin},
          {"model_config", m.model_config},
          {"lineage", LineageToJson(m.lineage)},
          {"metrics", m.metrics}};
}

absl::StatusOr<SnapshotMeta> SnapshotMetaFromJson(const Json& j) {
  if (!j.is_object() || !j.contains("id")) {
    return absl::DataLossError("snapshot metadata is not an object with an id");
  }
  SnapshotMeta m;
  m.id = j.value("id", "");
  m.created_ms = j.value("created_ms", int64_t{0});
  m.origin = j.value("origin", "");
  m.model_config = j.value("model_config", Json::object());
  m.lineage = LineageFromJson(j.value("lineage", Json::object()));
  m.metrics = j.value("metrics", Json::object());
  return m;
}

Store::Store(rocksdb::DB* db, bool read_only) : db_(db), read_only_(read_only) {}

Store::~Store() { delete db_; }

namespace {
constexpr char kLockedHint[] = " (another StreamLM process owns this --data-dir)";
}  // namespace

bool IsStoreLocked(const absl::Status& s) {
  return absl::IsUnavailable(s) && absl::StrContains(s.message(), kLockedHint);
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& dir,
                                                   bool read_only) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression;  // weights do not compress
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = read_only
                          ? rocksdb::DB::OpenForReadOnly(options, dir, &db)
                          : rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) {
    std::string hint;
    if (absl::StrContains(s.ToString(), "lock")) {
      hint = kLockedHint;
    } else if (read_only && s.IsPathNotFound()) {
      hint = " (no store there yet: run `streamlm run` or `streamlm bootstrap`)";
    }
    return absl::UnavailableError(absl::StrCat(
        "cannot open store at '", dir, "': ", s.ToString(), hint));
  }
  return std::unique_ptr<Store>(new Store(db, read_only));
}

absl::Status Store::Write(rocksdb::WriteBatch* batch) {
  if (read_only_) return absl::FailedPreconditionError("store opened read-only");
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Write(wo, batch), "write");
}

absl::StatusOr<std::optional<std::string>> Store::GetRaw(
    const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, key);
  return std::optional<std::string>(std::move(value));
}

// REQUIRES: write_mu_ held.
absl::StatusOr<int64_t> Store::NextCounter(const std::string& name,
                                           rocksdb::WriteBatch* batch) {
  auto raw = GetRaw("counter/" + name);
  if (!raw.ok()) return raw.status();
  int64_t n = 0;
  if (raw->has_value() && !absl::SimpleAtoi(**raw, &n)) {
    return absl::DataLossError("store: counter/" + name + " is corrupt");
  }
  ++n;
  batch->Put("counter/" + name, absl::StrCat(n));
  return n;
}

absl::StatusOr<std::string> Store::NewSnapshotId() {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  auto n = NextCounter("snapshot", &batch);
  if (!n.ok()) return n.status();
  absl::Status s = Write(&batch);
  if (!s.ok()) return s;
  return absl::StrFormat("snap-%06d", *n);
}

void Store::AddSnapshot(const Snapshot& s, rocksdb::WriteBatch* batch) {
  batch->Put(SnapKey(s.meta.id, "meta"), SnapshotMetaToJson(s.meta).dump());
  batch->Put(SnapKey(s.meta.id, "tok"), s.tokenizer);
  PutChunks(SnapKey(s.meta.id, "w/"), s.weights, batch);
}

absl::Status Store::PutSnapshot(const Snapshot& snapshot,
                                const std::vector<std::string>& aliases) {
  if (snapshot.meta.id.empty()) return absl::InvalidArgumentError("snapshot without id");
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  AddSnapshot(snapshot, &batch);
  for (const std::string& a : aliases) batch.Put("alias/" + a, snapshot.meta.id);
  return Write(&batch);
}

absl::Status Store::PutCheckpoint(const LearnerCheckpoint& c,
                                  const Snapshot* snapshot,
                                  const std::vector<std::string>& aliases) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  const std::string prefix = "ckpt/" + c.name + "/";
  DeletePrefix(db_, prefix, &batch);
  Json offsets = Json::object();
  for (const auto& [p, off] : c.next_offsets) offsets[std::to_string(p)] = off;
  Json state = {{"step", c.step},
                {"topic", c.topic},
                {"next_offsets", offsets},
                {"state", c.state},
                {"written_ms", NowMs()}};
  batch.Put(prefix + "state", state.dump());
  PutChunks(prefix + "w/", c.weights, &batch);
  PutChunks(prefix + "opt/", c.optimizer, &batch);
  batch.Put(prefix + "replay", c.replay);
  batch.Put(prefix + "dedup", c.dedup);
  if (!c.new_heldout.empty()) {
    auto first = NextCounter("heldout", &batch);
    if (!first.ok()) return first.status();
    int64_t next = *first;
    for (size_t i = 0; i < c.new_heldout.size(); ++i, ++next) {
      batch.Put(absl::StrFormat("heldout/%012d", next), c.new_heldout[i]);
    }
    --next;  // the last sequence number written
    batch.Put("counter/heldout", absl::StrCat(next));
    int64_t oldest_kept = next - static_cast<int64_t>(heldout_window_) + 1;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("heldout/"); it->Valid() && it->key().starts_with("heldout/");
         it->Next()) {
      int64_t seq = 0;
      if (absl::SimpleAtoi(it->key().ToString().substr(8), &seq) &&
          seq < oldest_kept) {
        batch.Delete(it->key());
      }
    }
  }
  if (snapshot != nullptr) {
    AddSnapshot(*snapshot, &batch);
    for (const std::string& a : aliases) batch.Put("alias/" + a, snapshot->meta.id);
  }
  return Write(&batch);
}

absl::StatusOr<LearnerCheckpoint> Store::GetCheckpoint(
    const std::string& name) const {
  const std::string prefix = "ckpt/" + name + "/";
  auto raw = GetRaw(prefix + "state");
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return absl::NotFoundError("no learner checkpoint");
  auto state = ParseJson(**raw);
  if (!state.ok()) return absl::DataLossError("checkpoint state is corrupt");
  LearnerCheckpoint c;
  c.name = name;
  c.step = state->value("step", int64_t{0});
  c.topic = state->value("topic", "");
  for (const auto& [p, off] : (*state)["next_offsets"].items()) {
    c.next_offsets[std::stoi(p)] = off.get<int64_t>();
  }
  c.state = state->value("state", Json::object());
  auto w = ReadChunks(prefix + "w/");
  if (!w.ok()) return w.status();
  c.weights = std::move(*w);
  auto o = ReadChunks(prefix + "opt/");
  if (!o.ok()) return o.status();
  c.optimizer = std::move(*o);
  auto r = GetRaw(prefix + "replay");
  if (!r.ok()) return r.status();
  if (r->has_value()) c.replay = std::move(**r);
  auto d = GetRaw(prefix + "dedup");
  if (!d.ok()) return d.status();
  if (d->has_value()) c.dedup = std::move(**d);
  return c;
}

absl::StatusOr<std::string> Store::ReadChunks(const std::string& prefix) const {
  std::string out;
  size_t expected = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next(), ++expected) {
    if (it->key().ToString() != ChunkKey(prefix, expected)) {
      return absl::DataLossError(absl::StrCat("store: chunk ", expected,
                                              " of ", prefix, " is missing"));
    }
    rocksdb::Slice v = it->value();
    if (v.size() < 4) return absl::DataLossError("store: short chunk " + it->key().ToString());
    uint32_t crc;
    std::memcpy(&crc, v.data(), 4);
    if (Crc(v.data() + 4, v.size() - 4) != crc) {
      return absl::DataLossError("store: checksum mismatch in " + it->key().ToString());
    }
    out.append(v.data() + 4, v.size() - 4);
  }
  if (expected == 0) return absl::NotFoundError("store: no data under " + prefix);
  return out;
}

absl::StatusOr<SnapshotMeta> Store::GetSnapshotMeta(const std::string& id) const {
  auto raw = GetRaw(SnapKey(id, "meta"));
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("snapshot '", id, "' does not exist"));
  }
  auto j = ParseJson(**raw);
  if (!j.ok()) return absl::DataLossError("snapshot " + id + " metadata corrupt");
  return SnapshotMetaFromJson(*j);
}

absl::StatusOr<Snapshot> Store::GetSnapshot(const std::string& id) const {
  Snapshot s;
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  s.meta = std::move(*meta);
  auto tok = GetRaw(SnapKey(id, "tok"));
  if (!tok.ok()) return tok.status();
  if (tok->has_value()) s.tokenizer = std::move(**tok);
  auto w = ReadChunks(SnapKey(id, "w/"));
  if (!w.ok()) return w.status();
  s.weights = std::move(*w);
  return s;
}

absl::StatusOr<std::vector<SnapshotMeta>> Store::ListSnapshots() const {
  std::vector<SnapshotMeta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("snap/"); it->Valid() && it->key().starts_with("snap/");
       it->Next()) {
    if (!absl::EndsWith(it->key().ToString(), "/meta")) continue;
    auto j = ParseJson(it->value().ToString());
    if (!j.ok()) continue;
    auto m = SnapshotMetaFromJson(*j);
    if (m.ok()) out.push_back(std::move(*m));
  }
  return out;
}

absl::Status Store::MergeSnapshotMetrics(const std::string& id,
                                         const Json& metrics) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  meta->metrics.update(metrics);
  rocksdb::WriteBatch batch;
  batch.Put(SnapKey(id, "meta"), SnapshotMetaToJson(*meta).dump());
  return Write(&batch);
}

absl::Status Store::SetAlias(const std::string& alias, const std::string& id) {
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  batch.Put("alias/" + alias, id);
  return Write(&batch);
}

absl::StatusOr<std::string> Store::GetAlias(const std::string& alias) const {
  auto raw = GetRaw("alias/" + alias);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("alias '", alias, "' is not set"));
  }
  return **raw;
}

// REQUIRES: write_mu_ held.
absl::Status Store::AddPromotion(const std::string& id,
                                 rocksdb::WriteBatch* batch) {
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  auto champion = GetAlias(kChampion);
  if (champion.ok()) {
    if (*champion == id) return absl::OkStatus();
    batch->Put(absl::StrCat("alias/", kPrevious), *champion);
  } else if (!absl::IsNotFound(champion.status())) {
    return champion.status();
  }
  batch->Put(absl::StrCat("alias/", kChampion), id);
  return absl::OkStatus();
}

absl::Status Store::Promote(const std::string& id) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  absl::Status s = AddPromotion(id, &batch);
  if (!s.ok()) return s;
  return Write(&batch);
}

absl::Status Store::Rollback() {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto previous = GetAlias(kPrevious);
  if (!previous.ok()) {
    return absl::FailedPreconditionError("no previous champion to roll back to");
  }
  auto champion = GetAlias(kChampion);
  if (!champion.ok()) return champion.status();
  rocksdb::WriteBatch batch;
  batch.Put(absl::StrCat("alias/", kChampion), *previous);
  batch.Put(absl::StrCat("alias/", kPrevious), *champion);
  return Write(&batch);
}

absl::StatusOr<Json> Store::AppendDecision(Json decision, bool promote) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  auto n = NextCounter("decision", &batch);
  if (!n.ok()) return n.status();
  decision["id"] = absl::StrFormat("dec-%06d", *n);
  batch.Put(absl::StrFormat("decision/%012d", *n), decision.dump());
  if (promote) {
    absl::Status s = AddPromotion(decision.value("candidate", ""), &batch);
    if (!s.ok()) return s;
  }
  absl::Status s = Write(&batch);
  if (!s.ok()) return s;
  return decision;
}

absl::StatusOr<std::vector<Json>> Store::ListDecisions(size_t limit) const {
  std::vector<Json> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekForPrev("decision/\xff"); it->Valid() &&
                                          it->key().starts_with("decision/");
       it->Prev()) {
    auto j = ParseJson(it->value().ToString());
    if (!j.ok()) return absl::DataLossError("decision log entry is corrupt");
    out.push_back(std::move(*j));
    if (limit != 0 && out.size() >= limit) break;
  }
  return out;
}

namespace {

std::string FeedbackKey(int32_t partition, int64_t offset) {
  return absl::StrFormat("feedback/%06d/%020d", partition, offset);
}

}  // namespace

absl::Status Store::PutFeedback(const std::vector<FeedbackEntry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  for (const FeedbackEntry& e : entries) {
    batch.Put(FeedbackKey(e.partition, e.offset), e.record.dump());
  }
  return Write(&batch);
}

absl::StatusOr<std::vector<Store::FeedbackEntry>> Store::ListFeedback(size_t limit) const {
  std::vector<FeedbackEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("feedback/"); it->Valid() && it->key().starts_with("feedback/"); it->Next()) {
    FeedbackEntry e;
    if (std::sscanf(it->key().ToString().c_str(), "feedback/%" SCNd32 "/%" SCNd64,
                    &e.partition, &e.offset) != 2) {
      return absl::DataLossError("feedback key is corrupt: " + it->key().ToString());
    }
    auto j = ParseJson(it->value().ToString());
    if (!j.ok()) return absl::DataLossError("feedback record is corrupt");
    e.record = std::move(*j);
    out.push_back(std::move(e));
    if (limit != 0 && out.size() >= limit) break;
  }
  return out;
}

absl::Status Store::PutEvalSet(const std::string& name, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  batch.Put("eval/" + name, bytes);
  return Write(&batch);
}

absl::StatusOr<std::string> Store::GetEvalSet(const std::string& name) const {
  auto raw = GetRaw("eval/" + name);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("eval set '", name, "' is missing"));
  }
  return **raw;
}

absl::StatusOr<std::vector<std::string>> Store::GetHeldout(size_t limit) const {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekForPrev("heldout/\xff");
       it->Valid() && it->key().starts_with("heldout/") && out.size() < limit;
       it->Prev()) {
    out.push_back(it->value().ToString());
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace streamlm
