#include "store/store.h"

#include <sys/statvfs.h>
#include <zlib.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace streamlm {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

// `retained/<id>`: present while snapshot <id> has its weights; the index
// retention scans instead of every snapshot's metadata.
constexpr char kRetainedPrefix[] = "retained/";
// Set once the index covers the snapshots written before it existed.
constexpr char kRetainedIndexedKey[] = "format/retained_index";

// Held-out record value, version 1: 0xFF 0x01, the source's length (4 bytes,
// little-endian), the source, the text. Legacy values are the raw text,
// which is UTF-8 (from a JSON string) and so never contains the byte 0xFF.
constexpr char kHeldoutV1Magic[] = "\xff\x01";
constexpr size_t kHeldoutV1HeaderBytes = 6;

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(what + ": not found");
  return absl::InternalError(absl::StrCat("store: ", what, ": ", s.ToString()));
}

std::string SnapKey(const std::string& id, const std::string& part) {
  return absl::StrCat("snap/", id, "/", part);
}

// Every key below `prefix` + '/' sorts before `prefix` + '0' ('0' follows
// '/'), so [prefix/, prefix0) is exactly one snapshot's (checkpoint's) keys.
std::string PrefixEnd(const std::string& prefix_without_slash) {
  return prefix_without_slash + "0";
}

// "snap/<id>/..." -> "<id>"; empty when the key has no id.
std::string SnapIdOfKey(const rocksdb::Slice& key) {
  std::string k = key.ToString();
  size_t slash = k.find('/', 5);
  if (k.size() < 5 || slash == std::string::npos) return "";
  return k.substr(5, slash - 5);
}

absl::Status ValidSnapshotId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("snapshot without id");
  if (id.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("snapshot id '" + id + "' contains '/'");
  }
  return absl::OkStatus();
}

std::string EncodeHeldout(const std::string& text, const std::string& source) {
  std::string v(kHeldoutV1Magic, 2);
  const uint32_t n = static_cast<uint32_t>(source.size());
  for (int i = 0; i < 4; ++i) v.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  v += source;
  v += text;
  return v;
}

absl::StatusOr<HeldoutRecord> DecodeHeldout(const rocksdb::Slice& v) {
  HeldoutRecord r;
  if (v.size() == 0 || v[0] != kHeldoutV1Magic[0]) {  // legacy: raw text
    r.text = v.ToString();
    return r;
  }
  if (v.size() < kHeldoutV1HeaderBytes || v[1] != kHeldoutV1Magic[1]) {
    return absl::DataLossError("store: held-out record of unknown format");
  }
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= uint32_t{static_cast<unsigned char>(v[2 + i])} << (8 * i);
  if (n > v.size() - kHeldoutV1HeaderBytes) {
    return absl::DataLossError("store: held-out record is truncated");
  }
  r.source.assign(v.data() + kHeldoutV1HeaderBytes, n);
  r.text.assign(v.data() + kHeldoutV1HeaderBytes + n, v.size() - kHeldoutV1HeaderBytes - n);
  return r;
}

// Snapshots a checkpoint state record needs: the one whose weights it
// shares ("weights_snapshot") and those it lists ("retain_snapshots").
std::vector<std::string> CheckpointPins(const Json& state) {
  std::vector<std::string> out;
  auto w = state.find("weights_snapshot");
  if (w != state.end() && w->is_string()) out.push_back(w->get<std::string>());
  auto r = state.find("retain_snapshots");
  if (r != state.end() && r->is_array()) {
    for (const Json& id : *r) {
      if (id.is_string()) out.push_back(id.get<std::string>());
    }
  }
  return out;
}

std::string ChunkKey(const std::string& prefix, size_t n) {
  return absl::StrFormat("%s%08d", prefix, n);
}

uint32_t Crc(const char* data, size_t n) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

// The CRC-32 of a stored chunk `v` (at `key`) after checking it against
// the chunk's bytes; DataLoss when it is short or does not match.
absl::StatusOr<uint32_t> CheckedChunkCrc(const std::string& key, std::string_view v) {
  if (v.size() < 4) return absl::DataLossError("store: short chunk " + key);
  uint32_t crc;
  std::memcpy(&crc, v.data(), 4);
  if (Crc(v.data() + 4, v.size() - 4) != crc) {
    return absl::DataLossError("store: checksum mismatch in " + key);
  }
  return crc;
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

}  // namespace

// What a commit changes that retention depends on.
struct Store::Changes {
  std::vector<std::string> new_snapshots;            // written by the commit
  std::map<std::string, std::string> aliases;        // alias -> id it sets
  // checkpoint name -> snapshots its new state needs
  std::map<std::string, std::vector<std::string>> checkpoint_pins;
};

// A consistent view: reads through it see one committed state, so a commit
// (and its retention) between two reads cannot tear a multi-key read. A
// follower's state changes only at CatchUp (RocksDB secondaries have no
// snapshots), so there the view holds CatchUp off instead.
class Store::ReadView {
 public:
  explicit ReadView(const Store& store) : db_(store.db_) {
    if (store.follower_) {
      caught_up_ = std::shared_lock<std::shared_mutex>(store.catch_up_mu_);
    } else {
      snapshot_ = db_->GetSnapshot();
      options_.snapshot = snapshot_;
    }
  }
  ~ReadView() {
    if (snapshot_ != nullptr) db_->ReleaseSnapshot(snapshot_);
  }
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;
  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snapshot_ = nullptr;
  std::shared_lock<std::shared_mutex> caught_up_;
  rocksdb::ReadOptions options_;
};

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
          {"metrics", m.metrics},
          {"weights_retained", m.weights_retained}};
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
  m.weights_retained = j.value("weights_retained", true);  // absent before retention
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
  std::unique_ptr<Store> store(new Store(db, read_only));
  if (!read_only) {
    absl::Status st = store->IndexLegacySnapshots();
    if (!st.ok()) return st;
  }
  return store;
}

absl::StatusOr<std::unique_ptr<Store>> Store::OpenFollower(const std::string& dir,
                                                           const std::string& follower_dir) {
  std::error_code ec;
  std::filesystem::create_directories(follower_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create follower directory '", follower_dir, "': ", ec.message()));
  }
  rocksdb::Options options;
  options.create_if_missing = false;
  options.compression = rocksdb::kNoCompression;
  options.max_open_files = -1;  // a secondary instance keeps every table file open
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenAsSecondary(options, dir, follower_dir, &db);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot follow store at '", dir, "': ", s.ToString(),
        s.IsPathNotFound() || s.IsInvalidArgument() ? " (no store there yet: start the process that owns it first)" : ""));
  }
  std::unique_ptr<Store> store(new Store(db, /*read_only=*/true));
  store->follower_ = true;
  return store;
}

absl::Status Store::CatchUp() {
  if (!follower_) return absl::FailedPreconditionError("store: CatchUp on a store that is not a follower");
  std::unique_lock<std::shared_mutex> lock(catch_up_mu_);
  rocksdb::Status s = db_->TryCatchUpWithPrimary();
  if (!s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("store: catching up with ", db_->GetName(), ": ", s.ToString()));
  }
  return absl::OkStatus();
}

// Stores written before retention have no `retained/` index: every snapshot
// there still has its weights. Runs once per store, at the first writable
// Open.
absl::Status Store::IndexLegacySnapshots() {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto marker = GetRaw(kRetainedIndexedKey);
  if (!marker.ok()) return marker.status();
  if (marker->has_value()) return absl::OkStatus();
  auto metas = ListSnapshots();
  if (!metas.ok()) return metas.status();
  rocksdb::WriteBatch batch;
  for (const SnapshotMeta& m : *metas) {
    if (m.weights_retained) batch.Put(kRetainedPrefix + m.id, "");
  }
  batch.Put(kRetainedIndexedKey, "1");
  return Write(&batch);
}

absl::Status Store::Write(rocksdb::WriteBatch* batch) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  // A full disk is refused here rather than met by RocksDB: after its
  // write-ahead log fails to grow, RocksDB 7.8 (Debian 12) can abort on an
  // assertion at the next write (seen in tests/store_fault_test.cc).
  struct statvfs fs;
  if (statvfs(db_->GetName().c_str(), &fs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    const uint64_t size = batch->GetDataSize();
    if (free_bytes < 2 * size + min_free_bytes_) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "store: no space left on device for a %d-byte write in %s: %d bytes free, and "
          "store.min_free_mb keeps %d MiB free",
          size, db_->GetName(), free_bytes, min_free_bytes_ >> 20));
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Write(wo, batch), "write");
}

absl::Status Store::CheckWritable() const {
  if (follower_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: this process follows ", db_->GetName(),
        ", which another process owns; send writes (promote, rollback, bootstrap) to that one"));
  }
  if (read_only_) return absl::FailedPreconditionError("store opened read-only");
  return absl::OkStatus();
}

// REQUIRES: write_mu_ held.
absl::Status Store::Commit(const Changes& changes, rocksdb::WriteBatch* batch) {
  if (absl::Status s = CheckWritable(); !s.ok()) return s;
  absl::Status s = AddRetention(changes, batch);
  if (!s.ok()) return s;
  return Write(batch);
}

// REQUIRES: write_mu_ held (so the state read here is the state `batch`
// applies to).
absl::Status Store::AddRetention(const Changes& changes,
                                 rocksdb::WriteBatch* batch) {
  std::set<std::string> keep(changes.new_snapshots.begin(),
                             changes.new_snapshots.end());
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));

  // Alias targets after the commit.
  std::map<std::string, std::string> aliases;
  for (it->Seek("alias/"); it->Valid() && it->key().starts_with("alias/"); it->Next()) {
    aliases[it->key().ToString().substr(6)] = it->value().ToString();
  }
  for (const auto& [alias, id] : changes.aliases) aliases[alias] = id;
  for (const auto& [alias, id] : aliases) keep.insert(id);

  // What the checkpoints need after the commit. Skips from one checkpoint's
  // keys to the next without reading their chunks.
  std::map<std::string, std::vector<std::string>> pins = changes.checkpoint_pins;
  for (it->Seek("ckpt/"); it->Valid() && it->key().starts_with("ckpt/");) {
    const std::string key = it->key().ToString();
    const size_t slash = key.find('/', 5);
    if (slash == std::string::npos) {
      it->Next();
      continue;
    }
    const std::string name = key.substr(5, slash - 5);
    if (pins.count(name) == 0) {
      auto raw = GetRaw(absl::StrCat("ckpt/", name, "/state"));
      if (!raw.ok()) return raw.status();
      if (raw->has_value()) {
        auto state = ParseJson(**raw);
        if (!state.ok() || !state->is_object()) {
          SLM_LOG(kWarning) << "store: checkpoint '" << name
                            << "' state is unreadable; retention deletes nothing";
          return absl::OkStatus();
        }
        pins[name] = CheckpointPins(*state);
      }
    }
    it->Seek(PrefixEnd("ckpt/" + name));
  }
  for (const auto& [name, ids] : pins) keep.insert(ids.begin(), ids.end());

  // The newest keep_snapshots_: those this commit writes, then by id.
  std::set<std::string> newest(changes.new_snapshots.begin(),
                               changes.new_snapshots.end());
  const size_t n = keep_snapshots_;
  for (it->SeekForPrev("snap/\xff"); newest.size() < n && it->Valid() &&
                                     it->key().starts_with("snap/");) {
    const std::string id = SnapIdOfKey(it->key());
    if (id.empty()) break;
    newest.insert(id);
    it->SeekForPrev(SnapKey(id, ""));  // the last key of the id before
  }
  keep.insert(newest.begin(), newest.end());

  std::vector<std::string> drop;
  const std::string index(kRetainedPrefix);
  for (it->Seek(index); it->Valid() && it->key().starts_with(index); it->Next()) {
    std::string id = it->key().ToString().substr(index.size());
    if (keep.count(id) == 0) drop.push_back(std::move(id));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "retention scan");
  for (const std::string& id : drop) {
    batch->DeleteRange(SnapKey(id, "w/"), PrefixEnd(SnapKey(id, "w")));
    batch->Delete(SnapKey(id, "tok"));
    batch->Delete(index + id);
    auto meta = GetSnapshotMeta(id);
    if (meta.ok()) {
      meta->weights_retained = false;
      batch->Put(SnapKey(id, "meta"), SnapshotMetaToJson(*meta).dump());
    }
  }
  return absl::OkStatus();
}

std::string Store::WeightsDeletedMessage(const std::string& id) const {
  return absl::StrCat(
      "snapshot '", id,
      "': its weights were deleted by retention (store.keep_snapshots keeps the "
      "newest snapshots' weights besides champion, previous, candidate and the "
      "checkpoint's); its metadata and lineage remain");
}

absl::StatusOr<std::optional<std::string>> Store::GetRaw(
    const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, key);
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::optional<std::string>> Store::GetRaw(
    const std::string& key, const ReadView& view) const {
  std::string value;
  rocksdb::Status s = db_->Get(view.options(), key, &value);
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
  SnapshotMeta meta = s.meta;
  meta.weights_retained = true;
  // Replaces whatever an earlier snapshot of the same id left.
  batch->DeleteRange(SnapKey(s.meta.id, ""), PrefixEnd("snap/" + s.meta.id));
  batch->Put(SnapKey(s.meta.id, "meta"), SnapshotMetaToJson(meta).dump());
  batch->Put(SnapKey(s.meta.id, "tok"), s.tokenizer);
  PutChunks(SnapKey(s.meta.id, "w/"), s.weights, batch);
  batch->Put(kRetainedPrefix + s.meta.id, "");
}

absl::Status Store::PutSnapshot(const Snapshot& snapshot,
                                const std::vector<std::string>& aliases) {
  absl::Status valid = ValidSnapshotId(snapshot.meta.id);
  if (!valid.ok()) return valid;
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  Changes changes;
  AddSnapshot(snapshot, &batch);
  changes.new_snapshots.push_back(snapshot.meta.id);
  for (const std::string& a : aliases) {
    batch.Put("alias/" + a, snapshot.meta.id);
    changes.aliases[a] = snapshot.meta.id;
  }
  return Commit(changes, &batch);
}

absl::Status Store::PutCheckpoint(const LearnerCheckpoint& c,
                                  const Snapshot* snapshot,
                                  const std::vector<std::string>& aliases) {
  if (!c.new_heldout_sources.empty() &&
      c.new_heldout_sources.size() != c.new_heldout.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint has ", c.new_heldout.size(), " held-out records but ",
        c.new_heldout_sources.size(), " sources"));
  }
  if (snapshot != nullptr) {
    absl::Status valid = ValidSnapshotId(snapshot->meta.id);
    if (!valid.ok()) return valid;
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  Changes changes;
  const std::string prefix = "ckpt/" + c.name + "/";
  batch.DeleteRange(prefix, PrefixEnd("ckpt/" + c.name));
  Json offsets = Json::object();
  for (const auto& [p, off] : c.next_offsets) offsets[std::to_string(p)] = off;
  Json state = {{"step", c.step},
                {"topic", c.topic},
                {"next_offsets", offsets},
                {"state", c.state},
                {"written_ms", NowMs()}};
  // Weights equal to the snapshot's are stored once, under the snapshot.
  const bool shares_weights = snapshot != nullptr && snapshot->weights == c.weights;
  if (shares_weights) state["weights_snapshot"] = snapshot->meta.id;
  if (!c.retain_snapshots.empty()) state["retain_snapshots"] = c.retain_snapshots;
  changes.checkpoint_pins[c.name] = CheckpointPins(state);
  batch.Put(prefix + "state", state.dump());
  if (!shares_weights) PutChunks(prefix + "w/", c.weights, &batch);
  PutChunks(prefix + "opt/", c.optimizer, &batch);
  batch.Put(prefix + "replay", c.replay);
  batch.Put(prefix + "dedup", c.dedup);
  if (!c.new_heldout.empty()) {
    auto first = NextCounter("heldout", &batch);
    if (!first.ok()) return first.status();
    int64_t next = *first;
    for (size_t i = 0; i < c.new_heldout.size(); ++i, ++next) {
      const std::string source =
          c.new_heldout_sources.empty() ? std::string() : c.new_heldout_sources[i];
      batch.Put(absl::StrFormat("heldout/%012d", next),
                EncodeHeldout(c.new_heldout[i], source));
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
    changes.new_snapshots.push_back(snapshot->meta.id);
    for (const std::string& a : aliases) {
      batch.Put("alias/" + a, snapshot->meta.id);
      changes.aliases[a] = snapshot->meta.id;
    }
  }
  return Commit(changes, &batch);
}

absl::StatusOr<LearnerCheckpoint> Store::GetCheckpoint(
    const std::string& name) const {
  ReadView view(*this);
  const std::string prefix = "ckpt/" + name + "/";
  auto raw = GetRaw(prefix + "state", view);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) return absl::NotFoundError("no learner checkpoint");
  auto state = ParseJson(**raw);
  if (!state.ok() || !state->is_object()) {
    return absl::DataLossError("checkpoint state is corrupt");
  }
  LearnerCheckpoint c;
  c.name = name;
  std::string weights_snapshot;
  // Fields of the wrong type or a partition that is not a number are data
  // loss naming the checkpoint, never an exception.
  try {
    c.step = state->value("step", int64_t{0});
    c.topic = state->value("topic", "");
    const Json offsets = state->value("next_offsets", Json::object());
    for (const auto& [p, off] : offsets.items()) {
      int32_t partition;
      if (!absl::SimpleAtoi(p, &partition) || partition < 0 || !off.is_number_integer()) {
        return absl::DataLossError(absl::StrCat("checkpoint '", name,
                                                "' is corrupt: bad next_offsets entry '", p,
                                                "': ", off.dump()));
      }
      c.next_offsets[partition] = off.get<int64_t>();
    }
    c.state = state->value("state", Json::object());
    c.retain_snapshots = state->value("retain_snapshots", std::vector<std::string>());
    weights_snapshot = state->value("weights_snapshot", "");
  } catch (const Json::exception& e) {
    return absl::DataLossError(
        absl::StrCat("checkpoint '", name, "' is corrupt: ", e.what()));
  }
  if (weights_snapshot.empty()) {  // its own copy (and every legacy checkpoint)
    auto w = ReadChunks(prefix + "w/", view);
    if (!w.ok()) return w.status();
    c.weights = std::move(*w);
  } else {
    auto w = ReadChunks(SnapKey(weights_snapshot, "w/"), view);
    if (absl::IsNotFound(w.status())) {
      return absl::DataLossError(absl::StrCat("checkpoint '", name,
                                              "' shares the weights of snapshot '",
                                              weights_snapshot, "', which are missing"));
    }
    if (!w.ok()) return w.status();
    c.weights = std::move(*w);
  }
  auto o = ReadChunks(prefix + "opt/", view);
  if (!o.ok()) return o.status();
  c.optimizer = std::move(*o);
  auto r = GetRaw(prefix + "replay", view);
  if (!r.ok()) return r.status();
  if (r->has_value()) c.replay = std::move(**r);
  auto d = GetRaw(prefix + "dedup", view);
  if (!d.ok()) return d.status();
  if (d->has_value()) c.dedup = std::move(**d);
  return c;
}

absl::StatusOr<std::string> Store::ReadChunks(const std::string& prefix,
                                              const ReadView& view) const {
  std::string out;
  size_t expected = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next(), ++expected) {
    if (it->key().ToString() != ChunkKey(prefix, expected)) {
      return absl::DataLossError(absl::StrCat("store: chunk ", expected,
                                              " of ", prefix, " is missing"));
    }
    const rocksdb::Slice v = it->value();
    auto crc = CheckedChunkCrc(it->key().ToString(), std::string_view(v.data(), v.size()));
    if (!crc.ok()) return crc.status();
    out.append(v.data() + 4, v.size() - 4);
  }
  if (!it->status().ok()) return FromRocks(it->status(), prefix);
  if (expected == 0) return absl::NotFoundError("store: no data under " + prefix);
  return out;
}

absl::StatusOr<SnapshotMeta> Store::GetSnapshotMeta(const std::string& id) const {
  ReadView view(*this);
  return GetSnapshotMeta(id, view);
}

absl::StatusOr<SnapshotMeta> Store::GetSnapshotMeta(const std::string& id,
                                                    const ReadView& view) const {
  auto raw = GetRaw(SnapKey(id, "meta"), view);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("snapshot '", id, "' does not exist"));
  }
  auto j = ParseJson(**raw);
  if (!j.ok()) return absl::DataLossError("snapshot " + id + " metadata corrupt");
  return SnapshotMetaFromJson(*j);
}

absl::StatusOr<Snapshot> Store::GetSnapshot(const std::string& id) const {
  ReadView view(*this);
  Snapshot s;
  auto meta = GetSnapshotMeta(id, view);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) return absl::NotFoundError(WeightsDeletedMessage(id));
  s.meta = std::move(*meta);
  if (read_hook_for_testing_) read_hook_for_testing_();
  auto tok = GetRaw(SnapKey(id, "tok"), view);
  if (!tok.ok()) return tok.status();
  if (tok->has_value()) s.tokenizer = std::move(**tok);
  auto w = ReadChunks(SnapKey(id, "w/"), view);
  if (!w.ok()) return w.status();
  s.weights = std::move(*w);
  return s;
}

uint32_t Store::Crc32(const std::string& bytes) { return Crc(bytes.data(), bytes.size()); }

absl::StatusOr<std::vector<uint32_t>> Store::GetSnapshotChunkCrcs(const std::string& id) const {
  ReadView view(*this);
  auto meta = GetSnapshotMeta(id, view);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) return absl::NotFoundError(WeightsDeletedMessage(id));
  const std::string prefix = SnapKey(id, "w/");
  std::vector<uint32_t> crcs;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().ToString() != ChunkKey(prefix, crcs.size())) {
      return absl::DataLossError(
          absl::StrCat("store: chunk ", crcs.size(), " of ", prefix, " is missing"));
    }
    const rocksdb::Slice v = it->value();
    auto crc = CheckedChunkCrc(it->key().ToString(), std::string_view(v.data(), v.size()));
    if (!crc.ok()) return crc.status();
    crcs.push_back(*crc);
  }
  if (!it->status().ok()) return FromRocks(it->status(), prefix);
  if (crcs.empty()) return absl::NotFoundError("store: no data under " + prefix);
  return crcs;
}

absl::StatusOr<Store::Chunk> Store::GetSnapshotChunk(const std::string& id, size_t n) const {
  ReadView view(*this);
  auto meta = GetSnapshotMeta(id, view);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) return absl::NotFoundError(WeightsDeletedMessage(id));
  const std::string key = ChunkKey(SnapKey(id, "w/"), n);
  auto raw = GetRaw(key, view);
  if (!raw.ok()) return raw.status();
  if (!raw->has_value()) {
    return absl::NotFoundError(absl::StrCat("snapshot '", id, "' has no chunk ", n));
  }
  auto crc = CheckedChunkCrc(key, **raw);
  if (!crc.ok()) return crc.status();
  return Chunk{*crc, (*raw)->substr(4)};
}

absl::StatusOr<std::string> Store::GetSnapshotTokenizer(const std::string& id) const {
  ReadView view(*this);
  auto meta = GetSnapshotMeta(id, view);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) return absl::NotFoundError(WeightsDeletedMessage(id));
  auto tok = GetRaw(SnapKey(id, "tok"), view);
  if (!tok.ok()) return tok.status();
  return tok->has_value() ? std::move(**tok) : std::string();
}

// Skips from one snapshot's metadata to the next (`meta` is the first key of
// a snapshot), never reading weight chunks.
absl::StatusOr<std::vector<SnapshotMeta>> Store::ListSnapshots() const {
  std::vector<SnapshotMeta> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("snap/"); it->Valid() && it->key().starts_with("snap/");) {
    const std::string id = SnapIdOfKey(it->key());
    if (id.empty()) {
      it->Next();
      continue;
    }
    if (it->key() == rocksdb::Slice(SnapKey(id, "meta"))) {
      auto j = ParseJson(it->value().ToString());
      if (j.ok()) {
        auto m = SnapshotMetaFromJson(*j);
        if (m.ok()) out.push_back(std::move(*m));
      }
    }
    it->Seek(PrefixEnd("snap/" + id));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "list snapshots");
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
  std::lock_guard<std::mutex> lock(write_mu_);
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) {
    return absl::FailedPreconditionError(WeightsDeletedMessage(id));
  }
  rocksdb::WriteBatch batch;
  Changes changes;
  batch.Put("alias/" + alias, id);
  changes.aliases[alias] = id;
  return Commit(changes, &batch);
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
                                 rocksdb::WriteBatch* batch, Changes* changes) {
  auto meta = GetSnapshotMeta(id);
  if (!meta.ok()) return meta.status();
  if (!meta->weights_retained) {
    return absl::FailedPreconditionError(WeightsDeletedMessage(id));
  }
  auto champion = GetAlias(kChampion);
  if (champion.ok()) {
    if (*champion == id) return absl::OkStatus();
    batch->Put(absl::StrCat("alias/", kPrevious), *champion);
    changes->aliases[kPrevious] = *champion;
  } else if (!absl::IsNotFound(champion.status())) {
    return champion.status();
  }
  batch->Put(absl::StrCat("alias/", kChampion), id);
  changes->aliases[kChampion] = id;
  return absl::OkStatus();
}

absl::Status Store::Promote(const std::string& id) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  Changes changes;
  absl::Status s = AddPromotion(id, &batch, &changes);
  if (!s.ok()) return s;
  return Commit(changes, &batch);
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
  Changes changes;
  batch.Put(absl::StrCat("alias/", kChampion), *previous);
  batch.Put(absl::StrCat("alias/", kPrevious), *champion);
  changes.aliases[kChampion] = *previous;
  changes.aliases[kPrevious] = *champion;
  return Commit(changes, &batch);
}

absl::StatusOr<Json> Store::AppendDecision(Json decision, bool promote) {
  std::lock_guard<std::mutex> lock(write_mu_);
  rocksdb::WriteBatch batch;
  Changes changes;
  auto n = NextCounter("decision", &batch);
  if (!n.ok()) return n.status();
  decision["id"] = absl::StrFormat("dec-%06d", *n);
  batch.Put(absl::StrFormat("decision/%012d", *n), decision.dump());
  absl::Status s;
  if (promote) {
    s = AddPromotion(decision.value("candidate", ""), &batch, &changes);
    if (!s.ok()) return s;
    s = Commit(changes, &batch);
  } else {
    s = Write(&batch);  // changes nothing retention depends on
  }
  if (!s.ok()) return s;
  return decision;
}

absl::StatusOr<Json> Store::AppendRollback(Json decision) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto previous = GetAlias(kPrevious);
  if (!previous.ok()) {
    return absl::FailedPreconditionError("no previous champion to roll back to");
  }
  auto champion = GetAlias(kChampion);
  if (!champion.ok()) return champion.status();
  const std::string expected = decision.value("champion", *champion);
  if (expected != *champion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the champion moved from ", expected, " to ", *champion, "; not rolling back"));
  }
  rocksdb::WriteBatch batch;
  Changes changes;
  auto n = NextCounter("decision", &batch);
  if (!n.ok()) return n.status();
  decision["id"] = absl::StrFormat("dec-%06d", *n);
  decision["champion"] = *champion;
  decision["candidate"] = *previous;
  batch.Put(absl::StrFormat("decision/%012d", *n), decision.dump());
  batch.Put(absl::StrCat("alias/", kChampion), *previous);
  batch.Put(absl::StrCat("alias/", kPrevious), *champion);
  changes.aliases[kChampion] = *previous;
  changes.aliases[kPrevious] = *champion;
  absl::Status s = Commit(changes, &batch);
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
  for (int left = fail_feedback_writes_.load(); left > 0;) {
    if (fail_feedback_writes_.compare_exchange_weak(left, left - 1)) {
      return absl::UnavailableError(
          "feedback write failed (injected by FailNextFeedbackWritesForTest)");
    }
  }
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

absl::StatusOr<std::vector<HeldoutRecord>> Store::GetHeldoutRecords(
    size_t limit) const {
  std::vector<HeldoutRecord> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekForPrev("heldout/\xff");
       it->Valid() && it->key().starts_with("heldout/") && out.size() < limit;
       it->Prev()) {
    auto r = DecodeHeldout(it->value());
    if (!r.ok()) {
      return absl::DataLossError(absl::StrCat(r.status().message(), " at ",
                                              it->key().ToString()));
    }
    out.push_back(std::move(*r));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "held-out records");
  std::reverse(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<std::string>> Store::GetHeldout(size_t limit) const {
  auto records = GetHeldoutRecords(limit);
  if (!records.ok()) return records.status();
  std::vector<std::string> out;
  out.reserve(records->size());
  for (HeldoutRecord& r : *records) out.push_back(std::move(r.text));
  return out;
}

absl::StatusOr<std::vector<std::pair<int64_t, HeldoutRecord>>> Store::GetHeldoutAfter(
    int64_t after, size_t limit) const {
  std::vector<std::pair<int64_t, HeldoutRecord>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekForPrev("heldout/\xff");
       it->Valid() && it->key().starts_with("heldout/") && out.size() < limit; it->Prev()) {
    int64_t seq = 0;
    if (!absl::SimpleAtoi(it->key().ToString().substr(8), &seq)) continue;
    if (seq <= after) break;
    auto r = DecodeHeldout(it->value());
    if (!r.ok()) {
      return absl::DataLossError(absl::StrCat(r.status().message(), " at ",
                                              it->key().ToString()));
    }
    out.emplace_back(seq, std::move(*r));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "held-out records");
  std::reverse(out.begin(), out.end());
  return out;
}

bool InLineage(const Store& store, const std::string& id, const std::string& ancestor) {
  std::string at = id;
  for (int hops = 0; !at.empty() && hops < 1000000; ++hops) {
    if (at == ancestor) return true;
    auto meta = store.GetSnapshotMeta(at);
    if (!meta.ok()) return false;
    at = meta->lineage.parent;
  }
  return false;
}

}  // namespace streamlm
