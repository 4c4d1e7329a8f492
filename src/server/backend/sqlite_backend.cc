// The embedded backend: one SQLite database (WAL, synchronous=FULL) for accounts,
// devices, collections, leases and the log, and one file per chunk under chunks/.
// A single connection guarded by a mutex: SQLite serializes writers anyway, and the
// critical sections are short. Concurrent appends share one commit (group commit).
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstddef>
#include <mutex>
#include <optional>
#include <set>

#include "src/core/file_util.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/server/backend/backend.h"
#include "src/server/backend/lease_rules.h"
#include "src/server/backend/pack_store.h"
#include "src/sqlite/sqlite.h"

namespace ferry::server {
namespace {

// Each entry moves the schema one version forward. Never edit a released entry: add one.
constexpr const char* kMigrations[] = {
    // 1: the first schema.
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts(
  account_id TEXT PRIMARY KEY,
  user TEXT NOT NULL UNIQUE,
  kdf_alg INTEGER NOT NULL,
  kdf_ops_limit INTEGER NOT NULL,
  kdf_mem_limit_bytes INTEGER NOT NULL,
  kdf_salt BLOB NOT NULL,
  auth_key_hash BLOB NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE devices(
  device_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  name TEXT NOT NULL,
  token_hash BLOB NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX devices_by_account ON devices(account_id);
CREATE TABLE collections(
  collection_id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(account_id),
  metadata BLOB NOT NULL,
  wrapped_key BLOB NOT NULL,
  key_epoch INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  head_seq INTEGER NOT NULL DEFAULT 0);
CREATE INDEX collections_by_account ON collections(account_id);
CREATE TABLE leases(
  collection_id TEXT PRIMARY KEY REFERENCES collections(collection_id),
  device_id TEXT NOT NULL,
  fencing_token INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL);
CREATE TABLE log(
  collection_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  tx_id BLOB NOT NULL,
  device_id TEXT NOT NULL,
  envelope BLOB NOT NULL,
  PRIMARY KEY(collection_id, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX log_by_tx_id ON log(collection_id, tx_id);
CREATE TABLE chunks(
  collection_id TEXT NOT NULL,
  chunk_id BLOB NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY(collection_id, chunk_id)) WITHOUT ROWID;
)sql",
    // Chunks appended to pack files (pack_store.h); rows without a pack are chunks
    // stored one file each by earlier versions, still read from there.
    R"sql(
ALTER TABLE chunks ADD COLUMN pack INTEGER;
ALTER TABLE chunks ADD COLUMN pack_offset INTEGER;
)sql",
};

constexpr char kBackendName[] = "sqlite";
// Appends committed together at most (group commit).
constexpr size_t kAppendBatchMax = 256;
// Connections for reads, beside the one that writes.
constexpr size_t kReadConnections = 4;

DeviceRecord ReadDevice(const sqlite::Statement& s) {
  DeviceRecord d;
  d.device_id = s.ColumnText(0);
  d.account_id = s.ColumnText(1);
  d.name = s.ColumnText(2);
  d.token_hash = s.ColumnBlob(3);
  d.created_ms = s.ColumnInt(4);
  d.last_seen_ms = s.ColumnInt(5);
  d.revoked = s.ColumnInt(6) != 0;
  return d;
}

CollectionRecord ReadCollection(const sqlite::Statement& s) {
  CollectionRecord c;
  c.collection_id = s.ColumnText(0);
  c.account_id = s.ColumnText(1);
  c.metadata = s.ColumnBlob(2);
  c.wrapped_key = s.ColumnBlob(3);
  c.key_epoch = static_cast<uint32_t>(s.ColumnInt(4));
  c.created_ms = s.ColumnInt(5);
  return c;
}

constexpr char kDeviceColumns[] =
    "device_id, account_id, name, token_hash, created_ms, last_seen_ms, revoked";
constexpr char kCollectionColumns[] =
    "collection_id, account_id, metadata, wrapped_key, key_epoch, created_ms";

class SqliteBackend final : public Backend {
 public:
  SqliteBackend(std::string data_dir, std::unique_ptr<sqlite::Database> db,
                std::unique_ptr<PackStore> packs)
      : data_dir_(std::move(data_dir)), db_(std::move(db)), packs_(std::move(packs)) {}

  std::string_view Name() const override { return kBackendName; }

  // After Init: the schema exists.
  absl::Status OpenReaders() {
    for (ReadConnection& r : readers_) {
      std::lock_guard lock(r.mu);
      FERRY_ASSIGN_OR_RETURN(r.db, sqlite::Database::Open(data_dir_ + "/ferry.db"));
    }
    return absl::OkStatus();
  }

  absl::Status Init() {
    std::lock_guard lock(mu_);
    FERRY_RETURN_IF_ERROR(db_->Migrate(kMigrations, std::size(kMigrations)));
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(auto get,
                           db_->Prepare("SELECT value FROM meta WHERE key='backend'"));
    FERRY_ASSIGN_OR_RETURN(bool found, get.Step());
    if (found) {
      std::string stored = get.ColumnText(0);
      if (stored != kBackendName) {
        return absl::FailedPreconditionError(
            StrCat("data directory was written by backend '", stored, "', not '",
                   kBackendName, "'"));
      }
      return absl::OkStatus();
    }
    FERRY_ASSIGN_OR_RETURN(
        auto put, db_->Prepare("INSERT INTO meta(key, value) VALUES('backend', ?)"));
    FERRY_RETURN_IF_ERROR(put.BindText(1, kBackendName).Run());
    return tx.Commit();
  }

  absl::Status CreateAccount(const AccountRecord& a, const DeviceRecord& first) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db_->Prepare("INSERT INTO accounts(account_id, user, kdf_alg, kdf_ops_limit, "
                     "kdf_mem_limit_bytes,"
                     " kdf_salt, auth_key_hash, created_ms) VALUES(?,?,?,?,?,?,?,?)"));
    s.BindText(1, a.account_id).BindText(2, a.user).Bind(3, a.kdf_alg);
    s.Bind(4, static_cast<int64_t>(a.kdf_ops_limit));
    s.Bind(5, static_cast<int64_t>(a.kdf_mem_limit_bytes));
    s.BindBlob(6, a.kdf_salt).BindBlob(7, a.auth_key_hash).Bind(8, a.created_ms);
    absl::Status status = s.Run();
    if (absl::IsAlreadyExists(status)) {
      return absl::AlreadyExistsError(StrCat("user '", a.user, "' exists"));
    }
    FERRY_RETURN_IF_ERROR(status);
    FERRY_RETURN_IF_ERROR(InsertDevice(first));
    return tx.Commit();
  }

  absl::StatusOr<AccountRecord> GetAccountByUser(std::string_view user) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    FERRY_ASSIGN_OR_RETURN(
        auto s, db->Prepare("SELECT account_id, user, kdf_alg, kdf_ops_limit, "
                            "kdf_mem_limit_bytes, kdf_salt,"
                            " auth_key_hash, created_ms FROM accounts WHERE user = ?"));
    s.BindText(1, user);
    FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError("no such user");
    AccountRecord a;
    a.account_id = s.ColumnText(0);
    a.user = s.ColumnText(1);
    a.kdf_alg = static_cast<uint32_t>(s.ColumnInt(2));
    a.kdf_ops_limit = static_cast<uint64_t>(s.ColumnInt(3));
    a.kdf_mem_limit_bytes = static_cast<uint64_t>(s.ColumnInt(4));
    a.kdf_salt = s.ColumnBlob(5);
    a.auth_key_hash = s.ColumnBlob(6);
    a.created_ms = s.ColumnInt(7);
    return a;
  }

  absl::Status CreateDevice(const DeviceRecord& d) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(int64_t count, CountOfAccount("devices", d.account_id));
    if (static_cast<size_t>(count) >= kDevicesPerAccountMax) {
      return absl::ResourceExhaustedError(
          StrCat("an account has at most ", kDevicesPerAccountMax, " devices"));
    }
    FERRY_RETURN_IF_ERROR(InsertDevice(d));
    return tx.Commit();
  }

  absl::StatusOr<DeviceRecord> GetDeviceByTokenHash(
      std::string_view token_hash) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    FERRY_ASSIGN_OR_RETURN(auto s,
                           db->Prepare(StrCat("SELECT ", kDeviceColumns,
                                              " FROM devices WHERE token_hash = ?")));
    s.BindBlob(1, token_hash);
    FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError("no device with this token");
    return ReadDevice(s);
  }

  absl::StatusOr<std::vector<DeviceRecord>> ListDevices(
      std::string_view account_id) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db->Prepare(
            StrCat("SELECT ", kDeviceColumns,
                   " FROM devices WHERE account_id = ? ORDER BY created_ms, device_id")));
    s.BindText(1, account_id);
    std::vector<DeviceRecord> out;
    for (size_t i = 0; i <= kDevicesPerAccountMax; ++i) {
      FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadDevice(s));
    }
    return out;
  }

  absl::Status RenameDevice(std::string_view account_id, std::string_view device_id,
                            std::string_view name) override {
    return UpdateDevice(
        "UPDATE devices SET name = ?3 WHERE account_id = ?1 AND device_id = ?2",
        account_id, device_id, name);
  }

  absl::Status RevokeDevice(std::string_view account_id,
                            std::string_view device_id) override {
    return UpdateDevice(
        "UPDATE devices SET revoked = 1 WHERE account_id = ?1 AND device_id = ?2",
        account_id, device_id, std::nullopt);
  }

  absl::Status TouchDevice(std::string_view device_id, int64_t now_ms) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto s,
                           db_->Prepare("UPDATE devices SET last_seen_ms = ? WHERE "
                                        "device_id = ? AND last_seen_ms < ?"));
    return s.Bind(1, now_ms).BindText(2, device_id).Bind(3, now_ms).Run();
  }

  absl::Status CreateCollection(const CollectionRecord& c) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(int64_t count, CountOfAccount("collections", c.account_id));
    if (static_cast<size_t>(count) >= kCollectionsPerAccountMax) {
      return absl::ResourceExhaustedError(
          StrCat("an account has at most ", kCollectionsPerAccountMax, " collections"));
    }
    FERRY_ASSIGN_OR_RETURN(
        auto s, db_->Prepare(StrCat("INSERT INTO collections(", kCollectionColumns,
                                    ") VALUES(?,?,?,?,?,?)")));
    s.BindText(1, c.collection_id).BindText(2, c.account_id).BindBlob(3, c.metadata);
    s.BindBlob(4, c.wrapped_key).Bind(5, c.key_epoch).Bind(6, c.created_ms);
    absl::Status status = s.Run();
    if (absl::IsAlreadyExists(status)) {
      return absl::AlreadyExistsError("a collection with this id exists");
    }
    FERRY_RETURN_IF_ERROR(status);
    return tx.Commit();
  }

  absl::StatusOr<CollectionRecord> GetCollection(
      std::string_view collection_id) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    FERRY_ASSIGN_OR_RETURN(
        auto s, db->Prepare(StrCat("SELECT ", kCollectionColumns,
                                   " FROM collections WHERE collection_id = ?")));
    s.BindText(1, collection_id);
    FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError("no such collection");
    return ReadCollection(s);
  }

  absl::StatusOr<std::vector<CollectionRecord>> ListCollections(
      std::string_view account_id) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    FERRY_ASSIGN_OR_RETURN(auto s,
                           db->Prepare(StrCat("SELECT ", kCollectionColumns,
                                              " FROM collections WHERE account_id = ? "
                                              "ORDER BY created_ms, collection_id")));
    s.BindText(1, account_id);
    std::vector<CollectionRecord> out;
    for (size_t i = 0; i <= kCollectionsPerAccountMax; ++i) {
      FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(ReadCollection(s));
    }
    return out;
  }

  absl::StatusOr<LeaseRecord> AcquireLease(std::string_view collection_id,
                                           std::string_view device_id, int64_t now_ms,
                                           int64_t ttl_ms) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(LeaseRecord lease, ReadLease(collection_id));
    FERRY_RETURN_IF_ERROR(CheckAcquire(lease, device_id, now_ms));
    lease.collection_id = std::string(collection_id);
    lease.device_id = std::string(device_id);
    lease.fencing_token += 1;
    lease.expires_ms = now_ms + ttl_ms;
    FERRY_RETURN_IF_ERROR(WriteLease(lease));
    FERRY_RETURN_IF_ERROR(tx.Commit());
    return lease;
  }

  absl::StatusOr<LeaseRecord> RenewLease(std::string_view collection_id,
                                         std::string_view device_id, uint64_t token,
                                         int64_t now_ms, int64_t ttl_ms) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(LeaseRecord lease, ReadLease(collection_id));
    FERRY_RETURN_IF_ERROR(CheckRenew(lease, device_id, token, now_ms));
    lease.expires_ms = now_ms + ttl_ms;
    FERRY_RETURN_IF_ERROR(WriteLease(lease));
    FERRY_RETURN_IF_ERROR(tx.Commit());
    return lease;
  }

  absl::Status ReleaseLease(std::string_view collection_id, std::string_view device_id,
                            uint64_t token, int64_t now_ms) override {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(LeaseRecord lease, ReadLease(collection_id));
    FERRY_ASSIGN_OR_RETURN(bool release, CheckRelease(lease, device_id, token, now_ms));
    if (!release) return absl::OkStatus();
    lease.device_id.clear();
    lease.expires_ms = 0;
    FERRY_RETURN_IF_ERROR(WriteLease(lease));
    return tx.Commit();
  }

  // Group commit: an append joins a queue; whoever gets the database next runs every
  // queued append in one transaction, each inside its own savepoint (so one refused
  // append changes nothing and does not affect the others), and pays one WAL fsync
  // for all of them. Each append still sees the ones before it in the batch, so the
  // checks are exactly those of one append at a time, in arrival order.
  absl::StatusOr<AppendResult> Append(const AppendRecord& a) override {
    PendingAppend mine{&a};
    {
      std::lock_guard queue_lock(queue_mu_);
      queue_.push_back(&mine);
    }
    std::lock_guard lock(mu_);
    // Each round runs at least one queued append, and ours is queued: bounded.
    for (;;) {
      std::vector<PendingAppend*> batch;
      {
        std::lock_guard queue_lock(queue_mu_);
        // An earlier leader ran it, and wrote the result before releasing mu_.
        if (mine.done) return std::move(mine.result);
        assert(!queue_.empty());
        size_t take = std::min(queue_.size(), kAppendBatchMax);
        batch.assign(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(take));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(take));
      }
      RunBatch(batch);
    }
  }

  absl::StatusOr<PullResult> Pull(std::string_view collection_id, uint64_t after_seq,
                                  uint32_t limit, size_t bytes_max) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    // One read transaction (a deferred BEGIN: no write lock), so that the head and the
    // entries come from one snapshot.
    FERRY_RETURN_IF_ERROR(db->Exec("BEGIN"));
    struct EndRead {
      sqlite::Database* db;
      ~EndRead() {
        // Ending a read transaction cannot lose anything; a failure leaves it open
        // until the connection's next BEGIN fails loudly.
        (void)db->Exec("COMMIT");
      }
    } end_read{db};
    PullResult result;
    FERRY_ASSIGN_OR_RETURN(result.head_seq, ReadHead(db, collection_id));
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db->Prepare("SELECT seq, envelope FROM log WHERE collection_id = ? AND seq > ?"
                    " ORDER BY seq LIMIT ?"));
    s.BindText(1, collection_id).Bind(2, static_cast<int64_t>(after_seq)).Bind(3, limit);
    size_t bytes = 0;
    for (uint32_t i = 0; i < limit; ++i) {
      FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      LogEntry entry{static_cast<uint64_t>(s.ColumnInt(0)), s.ColumnBlob(1)};
      if (!result.entries.empty() && bytes + entry.envelope.size() > bytes_max) break;
      bytes += entry.envelope.size();
      result.entries.push_back(std::move(entry));
    }
    uint64_t last = result.entries.empty() ? after_seq : result.entries.back().seq;
    result.more = last < result.head_seq;
    return result;
  }

  absl::StatusOr<uint64_t> Head(std::string_view collection_id) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    return ReadHead(db, collection_id);
  }

  absl::StatusOr<std::vector<bool>> HasChunks(
      std::string_view collection_id, const std::vector<std::string>& ids) override {
    Reader reader = Read();
    sqlite::Database* db = reader.db;
    return HasChunksLocked(db, collection_id, {ids.begin(), ids.end()});
  }

  // A batch is appended to a pack and made durable with one fdatasync, and only then
  // recorded in one SQLite transaction: a recorded chunk is always readable.
  absl::StatusOr<size_t> PutChunks(
      std::string_view collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    std::vector<const std::pair<std::string, std::string>*> fresh;
    {
      std::lock_guard lock(mu_);
      std::vector<std::string_view> ids;
      for (const auto& chunk : chunks) ids.push_back(chunk.first);
      FERRY_ASSIGN_OR_RETURN(std::vector<bool> has,
                             HasChunksLocked(db_.get(), collection_id, ids));
      std::set<std::string_view> seen;
      for (size_t i = 0; i < chunks.size(); ++i) {
        if (!has[i] && seen.insert(chunks[i].first).second) fresh.push_back(&chunks[i]);
      }
    }
    if (fresh.empty()) return 0;
    // The data is durable in a pack before the index names it.
    std::vector<std::pair<std::string_view, std::string_view>> records;
    records.reserve(fresh.size());
    for (const auto* chunk : fresh) records.emplace_back(chunk->first, chunk->second);
    FERRY_ASSIGN_OR_RETURN(std::vector<PackLocation> at, packs_->Append(records));
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db_->Prepare("INSERT OR IGNORE INTO chunks(collection_id, chunk_id, size, "
                     "pack, pack_offset) VALUES(?,?,?,?,?)"));
    size_t stored = 0;
    for (size_t i = 0; i < fresh.size(); ++i) {
      s.Reset();
      s.BindText(1, collection_id).BindBlob(2, fresh[i]->first);
      s.Bind(3, static_cast<int64_t>(at[i].size))
          .Bind(4, static_cast<int64_t>(at[i].pack));
      FERRY_RETURN_IF_ERROR(s.Bind(5, static_cast<int64_t>(at[i].offset)).Run());
      stored += static_cast<size_t>(db_->Changes());
    }
    FERRY_RETURN_IF_ERROR(tx.Commit());
    return stored;
  }

  absl::StatusOr<std::string> GetChunk(std::string_view collection_id,
                                       std::string_view id) override {
    std::optional<PackLocation> at;
    {
      Reader reader = Read();
      FERRY_ASSIGN_OR_RETURN(
          auto s, reader.db->Prepare("SELECT size, pack, pack_offset FROM chunks"
                                     " WHERE collection_id = ? AND chunk_id = ?"));
      s.BindText(1, collection_id).BindBlob(2, id);
      FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
      if (!found) return absl::NotFoundError("chunk not stored");
      if (!s.ColumnIsNull(1)) {
        at = PackLocation{static_cast<uint32_t>(s.ColumnInt(1)),
                          static_cast<uint64_t>(s.ColumnInt(2)),
                          static_cast<uint32_t>(s.ColumnInt(0))};
      }
    }
    if (at.has_value()) return packs_->Read(*at, id);
    absl::StatusOr<std::string> data =
        ReadFile(ChunkPath(collection_id, id), kSealedChunkBytesMax);
    if (absl::IsNotFound(data.status())) {
      return absl::DataLossError(StrCat("chunk file missing: ", data.status().message()));
    }
    return data;
  }

 private:
  // One of the read connections, locked while the Reader lives.
  struct Reader {
    std::unique_lock<std::mutex> lock;
    sqlite::Database* db;
  };
  Reader Read() {
    auto& r = readers_[next_reader_++ % readers_.size()];
    return Reader{std::unique_lock(r.mu), r.db.get()};
  }

  struct PendingAppend {
    const AppendRecord* append;
    absl::StatusOr<AppendResult> result = absl::UnknownError("append did not run");
    bool done = false;  // written under mu_, read under mu_
  };

  // One append inside the batch's transaction. REQUIRES: mu_ held, a transaction open.
  absl::StatusOr<AppendResult> AppendLocked(const AppendRecord& a) {
    FERRY_ASSIGN_OR_RETURN(
        auto dup,
        db_->Prepare("SELECT seq FROM log WHERE collection_id = ? AND tx_id = ?"));
    dup.BindText(1, a.collection_id).BindBlob(2, a.tx_id);
    FERRY_ASSIGN_OR_RETURN(bool seen, dup.Step());
    if (seen) return AppendResult{static_cast<uint64_t>(dup.ColumnInt(0)), true};

    FERRY_ASSIGN_OR_RETURN(LeaseRecord lease, ReadLease(a.collection_id));
    FERRY_RETURN_IF_ERROR(CheckAppendFencing(lease, a));

    FERRY_ASSIGN_OR_RETURN(uint64_t head, ReadHead(db_.get(), a.collection_id));
    if (a.base_seq != head) {
      return absl::AbortedError(
          StrCat("base_seq ", a.base_seq, " is not the head ", head, ": pull and retry"));
    }
    FERRY_RETURN_IF_ERROR(CheckChunksStored(a.collection_id, a.chunk_ids));

    uint64_t seq = head + 1;
    FERRY_ASSIGN_OR_RETURN(auto insert,
                           db_->Prepare("INSERT INTO log(collection_id, seq, tx_id, "
                                        "device_id, envelope) VALUES(?,?,?,?,?)"));
    insert.BindText(1, a.collection_id).Bind(2, static_cast<int64_t>(seq));
    insert.BindBlob(3, a.tx_id).BindText(4, a.device_id).BindBlob(5, a.envelope);
    FERRY_RETURN_IF_ERROR(insert.Run());
    FERRY_ASSIGN_OR_RETURN(auto bump,
                           db_->Prepare("UPDATE collections SET head_seq = ? WHERE "
                                        "collection_id = ? AND head_seq = ?"));
    bump.Bind(1, static_cast<int64_t>(seq)).BindText(2, a.collection_id);
    FERRY_RETURN_IF_ERROR(bump.Bind(3, static_cast<int64_t>(head)).Run());
    assert(db_->Changes() == 1);
    return AppendResult{seq, false};
  }

  // Runs `batch` in one transaction and fills in every result. REQUIRES: mu_ held.
  void RunBatch(const std::vector<PendingAppend*>& batch) {
    absl::StatusOr<sqlite::Transaction> tx = sqlite::Transaction::Begin(db_.get());
    for (PendingAppend* p : batch) {
      if (!tx.ok()) {
        p->result = tx.status();
        continue;
      }
      absl::Status saved = db_->Exec("SAVEPOINT append");
      p->result = saved.ok() ? AppendLocked(*p->append) : saved;
      if (!p->result.ok() && saved.ok()) {
        absl::Status undone = db_->Exec("ROLLBACK TO append");
        assert(undone.ok());
        (void)undone;  // a failed rollback fails the COMMIT below, and so every append
      }
      if (saved.ok()) {
        absl::Status released = db_->Exec("RELEASE append");
        if (!released.ok() && p->result.ok()) p->result = released;
      }
    }
    absl::Status committed = tx.ok() ? tx->Commit() : tx.status();
    for (PendingAppend* p : batch) {
      // Nothing of the batch is durable when COMMIT failed.
      if (!committed.ok() && p->result.ok()) p->result = committed;
      p->done = true;
    }
  }

  absl::StatusOr<std::vector<bool>> HasChunksLocked(sqlite::Database* db,
                                                    std::string_view collection_id,
                                                    std::vector<std::string_view> ids) {
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db->Prepare("SELECT 1 FROM chunks WHERE collection_id = ? AND chunk_id = ?"));
    std::vector<bool> present;
    for (std::string_view id : ids) {
      s.Reset();
      s.BindText(1, collection_id).BindBlob(2, id);
      FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
      present.push_back(found);
    }
    return present;
  }

  std::string ChunkDir(std::string_view collection_id, std::string_view id) const {
    std::string hex = Hex(id);
    return StrCat(data_dir_, "/chunks/", collection_id, "/", hex.substr(0, 2));
  }

  std::string ChunkPath(std::string_view collection_id, std::string_view id) const {
    return StrCat(ChunkDir(collection_id, id), "/", Hex(id));
  }

  // Rows of `table` (a constant) that belong to `account_id`.
  absl::StatusOr<int64_t> CountOfAccount(const char* table, std::string_view account_id) {
    FERRY_ASSIGN_OR_RETURN(auto s, db_->Prepare(StrCat("SELECT COUNT(*) FROM ", table,
                                                       " WHERE account_id = ?")));
    s.BindText(1, account_id);
    FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return absl::InternalError("COUNT returned no row");
    return s.ColumnInt(0);
  }

  absl::Status InsertDevice(const DeviceRecord& d) {
    FERRY_ASSIGN_OR_RETURN(auto s,
                           db_->Prepare(StrCat("INSERT INTO devices(", kDeviceColumns,
                                               ") VALUES(?,?,?,?,?,?,?)")));
    s.BindText(1, d.device_id).BindText(2, d.account_id).BindText(3, d.name);
    s.BindBlob(4, d.token_hash).Bind(5, d.created_ms).Bind(6, d.last_seen_ms);
    return s.Bind(7, d.revoked ? 1 : 0).Run();
  }

  // Runs `sql` with ?1 = account, ?2 = device and, when given, ?3 = value.
  absl::Status UpdateDevice(std::string_view sql, std::string_view account_id,
                            std::string_view device_id,
                            std::optional<std::string_view> value) {
    std::lock_guard lock(mu_);
    FERRY_ASSIGN_OR_RETURN(auto s, db_->Prepare(sql));
    s.BindText(1, account_id).BindText(2, device_id);
    if (value.has_value()) s.BindText(3, *value);
    FERRY_RETURN_IF_ERROR(s.Run());
    if (db_->Changes() == 0) return absl::NotFoundError("no such device in this account");
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> ReadHead(sqlite::Database* db,
                                    std::string_view collection_id) {
    FERRY_ASSIGN_OR_RETURN(
        auto s, db->Prepare("SELECT head_seq FROM collections WHERE collection_id = ?"));
    s.BindText(1, collection_id);
    FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
    if (!found) return absl::NotFoundError("no such collection");
    return static_cast<uint64_t>(s.ColumnInt(0));
  }

  // A missing row reads as a free lease with token 0.
  absl::StatusOr<LeaseRecord> ReadLease(std::string_view collection_id) {
    FERRY_ASSIGN_OR_RETURN(auto s,
                           db_->Prepare("SELECT device_id, fencing_token, expires_ms "
                                        "FROM leases WHERE collection_id = ?"));
    s.BindText(1, collection_id);
    LeaseRecord lease;
    lease.collection_id = std::string(collection_id);
    FERRY_ASSIGN_OR_RETURN(bool found, s.Step());
    if (found) {
      lease.device_id = s.ColumnText(0);
      lease.fencing_token = static_cast<uint64_t>(s.ColumnInt(1));
      lease.expires_ms = s.ColumnInt(2);
    }
    return lease;
  }

  absl::Status WriteLease(const LeaseRecord& lease) {
    FERRY_ASSIGN_OR_RETURN(
        auto s,
        db_->Prepare(
            "INSERT INTO leases(collection_id, device_id, fencing_token, expires_ms)"
            " VALUES(?1,?2,?3,?4) ON CONFLICT(collection_id) DO UPDATE SET"
            " device_id = ?2, fencing_token = ?3, expires_ms = ?4"));
    s.BindText(1, lease.collection_id).BindText(2, lease.device_id);
    return s.Bind(3, static_cast<int64_t>(lease.fencing_token))
        .Bind(4, lease.expires_ms)
        .Run();
  }

  absl::Status CheckChunksStored(std::string_view collection_id,
                                 const std::vector<std::string>& ids) {
    FERRY_ASSIGN_OR_RETURN(
        std::vector<bool> present,
        HasChunksLocked(db_.get(), collection_id, {ids.begin(), ids.end()}));
    for (size_t i = 0; i < ids.size(); ++i) {
      if (!present[i]) {
        return absl::FailedPreconditionError(
            StrCat("envelope references chunk ", Hex(ids[i]), " which is not stored"));
      }
    }
    return absl::OkStatus();
  }

  const std::string data_dir_;
  std::mutex mu_;
  std::unique_ptr<sqlite::Database> db_;  // guarded by mu_
  std::unique_ptr<PackStore> packs_;      // appends serialized inside
  // Reads go to their own connections: in WAL mode they see every committed write
  // and never wait for a writer, so a commit's fsync does not stall authentication.
  struct ReadConnection {
    std::mutex mu;
    std::unique_ptr<sqlite::Database> db;  // guarded by mu
  };
  std::array<ReadConnection, kReadConnections> readers_;
  std::atomic<size_t> next_reader_{0};
  std::mutex queue_mu_;                // taken after mu_ when both are held
  std::vector<PendingAppend*> queue_;  // guarded by queue_mu_
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> OpenSqliteBackend(std::string_view data_dir) {
  std::string dir(data_dir);
  FERRY_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  FERRY_RETURN_IF_ERROR(MakeDirs(dir + "/chunks", 0700));
  FERRY_ASSIGN_OR_RETURN(auto db, sqlite::Database::Open(dir + "/ferry.db"));
  FERRY_ASSIGN_OR_RETURN(auto packs, PackStore::Open(dir + "/packs"));
  auto backend = std::make_unique<SqliteBackend>(dir, std::move(db), std::move(packs));
  FERRY_RETURN_IF_ERROR(backend->Init());
  FERRY_RETURN_IF_ERROR(backend->OpenReaders());
  return backend;
}

}  // namespace ferry::server
