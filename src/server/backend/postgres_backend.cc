// The shared backend: everything in one PostgreSQL database, so that any number of
// ferryd processes can serve the same accounts.
//
// Concurrency. Every collection's row holds its head_seq and its lease. Append and the
// lease calls lock that row first (SELECT ... FOR UPDATE) at READ COMMITTED, then check
// and write. We chose a row lock over SERIALIZABLE with retries because appends to one
// collection are exactly the conflicts we expect: with a row lock the loser waits a few
// hundred microseconds and then sees the winner's head (a clean ABORTED from the
// compare), where SERIALIZABLE would abort and re-run whole transactions, and would
// also take predicate locks on the log's index, making unrelated collections conflict.
// Appends to different collections never wait for each other. Every statement after
// the lock sees what committed before it (READ COMMITTED takes a new snapshot per
// statement), so the duplicate check after the lock also catches a retry of the same
// transaction committed through another ferryd a moment earlier.
//
// All text is stored as bytea: ids, names and sealed bytes are byte strings to ferry,
// compared bytewise as SQLite compares them.
#include <algorithm>
#include <cassert>
#include <memory>
#include <optional>
#include <set>

#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/pg/pg.h"
#include "src/server/backend/backend.h"
#include "src/server/backend/chunk_store.h"
#include "src/server/backend/lease_rules.h"

namespace ferry::server {
namespace {

using pg::Connection;
using pg::Params;
using pg::Result;

// Each entry moves the schema one version forward. Never edit a released entry: add one.
constexpr const char* kMigrations[] = {
    // 1: the first schema.
    R"sql(
CREATE TABLE ferry_meta(key TEXT PRIMARY KEY, value BYTEA NOT NULL);
CREATE TABLE accounts(
  account_id BYTEA PRIMARY KEY,
  user_name BYTEA NOT NULL UNIQUE,
  kdf_alg INT8 NOT NULL,
  kdf_ops_limit INT8 NOT NULL,
  kdf_mem_limit_bytes INT8 NOT NULL,
  kdf_salt BYTEA NOT NULL,
  auth_key_hash BYTEA NOT NULL,
  created_ms INT8 NOT NULL);
CREATE TABLE devices(
  device_id BYTEA PRIMARY KEY,
  account_id BYTEA NOT NULL REFERENCES accounts(account_id),
  name BYTEA NOT NULL,
  token_hash BYTEA NOT NULL UNIQUE,
  created_ms INT8 NOT NULL,
  last_seen_ms INT8 NOT NULL,
  revoked BOOLEAN NOT NULL DEFAULT false);
CREATE INDEX devices_by_account ON devices(account_id);
CREATE TABLE collections(
  collection_id BYTEA PRIMARY KEY,
  account_id BYTEA NOT NULL REFERENCES accounts(account_id),
  metadata BYTEA NOT NULL,
  wrapped_key BYTEA NOT NULL,
  key_epoch INT8 NOT NULL,
  created_ms INT8 NOT NULL,
  head_seq INT8 NOT NULL DEFAULT 0,
  lease_device_id BYTEA NOT NULL DEFAULT '',
  lease_fencing_token INT8 NOT NULL DEFAULT 0,
  lease_expires_ms INT8 NOT NULL DEFAULT 0);
CREATE INDEX collections_by_account ON collections(account_id);
CREATE TABLE log(
  collection_id BYTEA NOT NULL,
  seq INT8 NOT NULL,
  tx_id BYTEA NOT NULL,
  device_id BYTEA NOT NULL,
  envelope BYTEA NOT NULL,
  PRIMARY KEY(collection_id, seq),
  UNIQUE(collection_id, tx_id));
CREATE TABLE chunks(
  collection_id BYTEA NOT NULL,
  chunk_id BYTEA NOT NULL,
  size INT8 NOT NULL,
  PRIMARY KEY(collection_id, chunk_id));
CREATE TABLE chunk_data(
  collection_id BYTEA NOT NULL,
  chunk_id BYTEA NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY(collection_id, chunk_id));
-- Sealed chunks are compressed and encrypted already: do not try again.
ALTER TABLE chunk_data ALTER COLUMN data SET STORAGE EXTERNAL;
)sql",
};

constexpr char kBackendName[] = "postgresql";
// The advisory lock held while migrating ("ferry" in ASCII); any constant would do as
// long as every ferryd uses the same one.
constexpr int64_t kMigrationLockKey = 0x6665727279;
// The NOTIFY channel; the payload is "<hex collection id> <head seq>".
constexpr char kHeadsChannel[] = "ferry_heads";

// Parses a payload of kHeadsChannel; false when it is malformed.
bool ParseHeadPayload(std::string_view payload, std::string* collection_id,
                      uint64_t* head) {
  size_t space = payload.find(' ');
  if (space == std::string_view::npos || space % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  collection_id->clear();
  for (size_t i = 0; i < space; i += 2) {
    int hi = nibble(payload[i]), lo = nibble(payload[i + 1]);
    if (hi < 0 || lo < 0) return false;
    collection_id->push_back(static_cast<char>(hi * 16 + lo));
  }
  std::string_view digits = payload.substr(space + 1);
  if (digits.empty() || digits.size() > 19) return false;
  *head = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    *head = *head * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

// $1 collection, $2 bytea[] of chunk ids: the ids stored.
constexpr char kHasChunksSql[] =
    "SELECT chunk_id FROM chunks WHERE collection_id = $1 AND chunk_id = ANY($2)";

constexpr char kDeviceColumns[] =
    "device_id, account_id, name, token_hash, created_ms, last_seen_ms, revoked";
constexpr char kCollectionColumns[] =
    "collection_id, account_id, metadata, wrapped_key, key_epoch, created_ms";

DeviceRecord ReadDevice(const Result& r, int row) {
  DeviceRecord d;
  d.device_id = r.Bytes(row, 0);
  d.account_id = r.Bytes(row, 1);
  d.name = r.Bytes(row, 2);
  d.token_hash = r.Bytes(row, 3);
  d.created_ms = r.Int(row, 4);
  d.last_seen_ms = r.Int(row, 5);
  d.revoked = r.Bool(row, 6);
  return d;
}

CollectionRecord ReadCollection(const Result& r, int row) {
  CollectionRecord c;
  c.collection_id = r.Bytes(row, 0);
  c.account_id = r.Bytes(row, 1);
  c.metadata = r.Bytes(row, 2);
  c.wrapped_key = r.Bytes(row, 3);
  c.key_epoch = static_cast<uint32_t>(r.Int(row, 4));
  c.created_ms = r.Int(row, 5);
  return c;
}

// Chunk bytes in the table chunk_data of the same database.
class PostgresChunkStore final : public ChunkStore {
 public:
  explicit PostgresChunkStore(pg::Pool* pool) : pool_(pool) {}

  absl::Status Put(std::string_view collection_id,
                   const std::vector<const Chunk*>& chunks) override {
    std::vector<std::string_view> ids, data;
    for (const Chunk* chunk : chunks) {
      ids.push_back(chunk->first);
      data.push_back(chunk->second);
    }
    // Idempotent, so it may run again after a lost connection.
    return pool_->Run(
        [&](Connection& conn) {
          return conn
              .Exec(
                  "INSERT INTO chunk_data(collection_id, chunk_id, data)"
                  " SELECT $1, u.id, u.data FROM unnest($2::bytea[], $3::bytea[])"
                  " AS u(id, data) ON CONFLICT DO NOTHING",
                  Params().Bytes(collection_id).BytesArray(ids).BytesArray(data))
              .status();
        },
        /*retry_safe=*/true);
  }

  absl::StatusOr<std::string> Get(std::string_view collection_id,
                                  std::string_view id) override {
    std::string data;
    bool found = false;
    absl::Status done = pool_->Run(
        [&](Connection& conn) -> absl::Status {
          FERRY_ASSIGN_OR_RETURN(
              Result r, conn.Exec("SELECT data FROM chunk_data WHERE collection_id = $1"
                                  " AND chunk_id = $2",
                                  Params().Bytes(collection_id).Bytes(id)));
          found = r.rows() > 0;
          if (found) data = r.Bytes(0, 0);
          return absl::OkStatus();
        },
        /*retry_safe=*/true);
    if (!done.ok()) return done;
    if (!found) return absl::NotFoundError("chunk bytes not stored");
    return data;
  }

 private:
  pg::Pool* const pool_;
};

class PostgresBackend final : public Backend {
 public:
  PostgresBackend(std::string conninfo, size_t connections_max)
      : pool_(pg::PoolOptions{std::move(conninfo), connections_max}),
        chunk_store_(std::make_unique<PostgresChunkStore>(&pool_)) {}

  ~PostgresBackend() override {
    listener_.reset();  // stops its thread before the callbacks go away
  }

  std::string_view Name() const override { return kBackendName; }

  // Applies the missing migrations under an advisory lock, so that ferryd processes
  // starting together apply each exactly once: the others wait and then find them
  // applied.
  absl::Status Init() {
    return pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_RETURN_IF_ERROR(
          conn.Exec("SELECT pg_advisory_xact_lock($1)", Params().Int(kMigrationLockKey))
              .status());
      FERRY_RETURN_IF_ERROR(
          conn.Script("CREATE TABLE IF NOT EXISTS ferry_schema(version INT8 PRIMARY KEY,"
                      " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"));
      FERRY_ASSIGN_OR_RETURN(
          Result r,
          conn.Exec("SELECT coalesce(max(version), 0)::int8 FROM ferry_schema"));
      int64_t version = r.Int(0, 0);
      const int64_t known = static_cast<int64_t>(std::size(kMigrations));
      if (version > known) {
        return absl::FailedPreconditionError(
            StrCat("the database schema is version ", version,
                   ", newer than this ferryd knows (", known, "): upgrade ferryd"));
      }
      for (int64_t v = version + 1; v <= known; ++v) {
        FERRY_RETURN_IF_ERROR(conn.Script(kMigrations[v - 1]));
        FERRY_RETURN_IF_ERROR(
            conn.Exec("INSERT INTO ferry_schema(version) VALUES($1)", Params().Int(v))
                .status());
      }
      FERRY_ASSIGN_OR_RETURN(
          Result meta, conn.Exec("SELECT value FROM ferry_meta WHERE key = 'backend'"));
      if (meta.rows() == 0) {
        return conn
            .Exec("INSERT INTO ferry_meta(key, value) VALUES('backend', $1)",
                  Params().Bytes(kBackendName))
            .status();
      }
      if (meta.Bytes(0, 0) != kBackendName) {
        return absl::FailedPreconditionError(
            StrCat("database was written by backend '", meta.Bytes(0, 0), "'"));
      }
      return absl::OkStatus();
    });
  }

  absl::Status CreateAccount(const AccountRecord& a, const DeviceRecord& first) override {
    return pool_.Transaction([&](Connection& conn) -> absl::Status {
      absl::Status status =
          conn.Exec(
                  "INSERT INTO accounts(account_id, user_name, kdf_alg, kdf_ops_limit,"
                  " kdf_mem_limit_bytes, kdf_salt, auth_key_hash, created_ms)"
                  " VALUES($1,$2,$3,$4,$5,$6,$7,$8)",
                  Params()
                      .Bytes(a.account_id)
                      .Bytes(a.user)
                      .Int(a.kdf_alg)
                      .Int(static_cast<int64_t>(a.kdf_ops_limit))
                      .Int(static_cast<int64_t>(a.kdf_mem_limit_bytes))
                      .Bytes(a.kdf_salt)
                      .Bytes(a.auth_key_hash)
                      .Int(a.created_ms))
              .status();
      if (absl::IsAlreadyExists(status)) {
        return absl::AlreadyExistsError(StrCat("user '", a.user, "' exists"));
      }
      FERRY_RETURN_IF_ERROR(status);
      return InsertDevice(conn, first);
    });
  }

  absl::StatusOr<AccountRecord> GetAccountByUser(std::string_view user) override {
    std::optional<AccountRecord> account;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r, conn.Exec("SELECT account_id, user_name, kdf_alg, kdf_ops_limit,"
                              " kdf_mem_limit_bytes, kdf_salt, auth_key_hash, created_ms"
                              " FROM accounts WHERE user_name = $1",
                              Params().Bytes(user)));
      if (r.rows() == 0) return absl::OkStatus();
      AccountRecord& a = account.emplace();
      a.account_id = r.Bytes(0, 0);
      a.user = r.Bytes(0, 1);
      a.kdf_alg = static_cast<uint32_t>(r.Int(0, 2));
      a.kdf_ops_limit = static_cast<uint64_t>(r.Int(0, 3));
      a.kdf_mem_limit_bytes = static_cast<uint64_t>(r.Int(0, 4));
      a.kdf_salt = r.Bytes(0, 5);
      a.auth_key_hash = r.Bytes(0, 6);
      a.created_ms = r.Int(0, 7);
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    if (!account.has_value()) return absl::NotFoundError("no such user");
    return *std::move(account);
  }

  absl::Status CreateDevice(const DeviceRecord& d) override {
    return pool_.Transaction([&](Connection& conn) -> absl::Status {
      // The account's row lock serializes concurrent creations, so the bound holds
      // across ferryd processes.
      FERRY_ASSIGN_OR_RETURN(int64_t count,
                             LockAccountAndCount(conn, "devices", d.account_id));
      if (static_cast<size_t>(count) >= kDevicesPerAccountMax) {
        return absl::ResourceExhaustedError(
            StrCat("an account has at most ", kDevicesPerAccountMax, " devices"));
      }
      return InsertDevice(conn, d);
    });
  }

  absl::StatusOr<DeviceRecord> GetDeviceByTokenHash(
      std::string_view token_hash) override {
    std::optional<DeviceRecord> device;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(Result r,
                             conn.Exec(StrCat("SELECT ", kDeviceColumns,
                                              " FROM devices WHERE token_hash = $1"),
                                       Params().Bytes(token_hash)));
      if (r.rows() > 0) device = ReadDevice(r, 0);
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    if (!device.has_value()) return absl::NotFoundError("no device with this token");
    return *std::move(device);
  }

  absl::StatusOr<std::vector<DeviceRecord>> ListDevices(
      std::string_view account_id) override {
    std::vector<DeviceRecord> out;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r, conn.Exec(StrCat("SELECT ", kDeviceColumns,
                                     " FROM devices WHERE account_id = $1"
                                     " ORDER BY created_ms, device_id LIMIT $2"),
                              Params()
                                  .Bytes(account_id)
                                  .Int(static_cast<int64_t>(kDevicesPerAccountMax) + 1)));
      out.clear();
      for (int i = 0; i < r.rows(); ++i) out.push_back(ReadDevice(r, i));
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    return out;
  }

  absl::Status RenameDevice(std::string_view account_id, std::string_view device_id,
                            std::string_view name) override {
    return UpdateDevice(
        "UPDATE devices SET name = $3 WHERE account_id = $1 AND device_id = $2",
        Params().Bytes(account_id).Bytes(device_id).Bytes(name));
  }

  absl::Status RevokeDevice(std::string_view account_id,
                            std::string_view device_id) override {
    return UpdateDevice(
        "UPDATE devices SET revoked = true WHERE account_id = $1 AND device_id = $2",
        Params().Bytes(account_id).Bytes(device_id));
  }

  absl::Status TouchDevice(std::string_view device_id, int64_t now_ms) override {
    return Read([&](Connection& conn) {  // idempotent: safe to run again
      return conn
          .Exec(
              "UPDATE devices SET last_seen_ms = $2 WHERE device_id = $1"
              " AND last_seen_ms < $2",
              Params().Bytes(device_id).Int(now_ms))
          .status();
    });
  }

  absl::Status CreateCollection(const CollectionRecord& c) override {
    return pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(int64_t count,
                             LockAccountAndCount(conn, "collections", c.account_id));
      if (static_cast<size_t>(count) >= kCollectionsPerAccountMax) {
        return absl::ResourceExhaustedError(
            StrCat("an account has at most ", kCollectionsPerAccountMax, " collections"));
      }
      absl::Status status =
          conn.Exec(StrCat("INSERT INTO collections(", kCollectionColumns,
                           ") VALUES($1,$2,$3,$4,$5,$6)"),
                    Params()
                        .Bytes(c.collection_id)
                        .Bytes(c.account_id)
                        .Bytes(c.metadata)
                        .Bytes(c.wrapped_key)
                        .Int(c.key_epoch)
                        .Int(c.created_ms))
              .status();
      if (absl::IsAlreadyExists(status)) {
        return absl::AlreadyExistsError("a collection with this id exists");
      }
      return status;
    });
  }

  absl::StatusOr<CollectionRecord> GetCollection(
      std::string_view collection_id) override {
    std::optional<CollectionRecord> collection;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r, conn.Exec(StrCat("SELECT ", kCollectionColumns,
                                     " FROM collections WHERE collection_id = $1"),
                              Params().Bytes(collection_id)));
      if (r.rows() > 0) collection = ReadCollection(r, 0);
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    if (!collection.has_value()) return absl::NotFoundError("no such collection");
    return *std::move(collection);
  }

  absl::StatusOr<std::vector<CollectionRecord>> ListCollections(
      std::string_view account_id) override {
    std::vector<CollectionRecord> out;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r,
          conn.Exec(StrCat("SELECT ", kCollectionColumns,
                           " FROM collections WHERE account_id = $1"
                           " ORDER BY created_ms, collection_id LIMIT $2"),
                    Params()
                        .Bytes(account_id)
                        .Int(static_cast<int64_t>(kCollectionsPerAccountMax) + 1)));
      out.clear();
      for (int i = 0; i < r.rows(); ++i) out.push_back(ReadCollection(r, i));
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    return out;
  }

  absl::StatusOr<LeaseRecord> AcquireLease(std::string_view collection_id,
                                           std::string_view device_id, int64_t now_ms,
                                           int64_t ttl_ms) override {
    LeaseRecord lease;
    absl::Status done = pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(lease, LockLease(conn, collection_id));
      FERRY_RETURN_IF_ERROR(CheckAcquire(lease, device_id, now_ms));
      lease.device_id = std::string(device_id);
      lease.fencing_token += 1;
      lease.expires_ms = now_ms + ttl_ms;
      return WriteLease(conn, lease);
    });
    if (!done.ok()) return done;
    return lease;
  }

  absl::StatusOr<LeaseRecord> RenewLease(std::string_view collection_id,
                                         std::string_view device_id, uint64_t token,
                                         int64_t now_ms, int64_t ttl_ms) override {
    LeaseRecord lease;
    absl::Status done = pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(lease, LockLease(conn, collection_id));
      FERRY_RETURN_IF_ERROR(CheckRenew(lease, device_id, token, now_ms));
      lease.expires_ms = now_ms + ttl_ms;
      return WriteLease(conn, lease);
    });
    if (!done.ok()) return done;
    return lease;
  }

  absl::Status ReleaseLease(std::string_view collection_id, std::string_view device_id,
                            uint64_t token, int64_t now_ms) override {
    return pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(LeaseRecord lease, LockLease(conn, collection_id));
      FERRY_ASSIGN_OR_RETURN(bool release, CheckRelease(lease, device_id, token, now_ms));
      if (!release) return absl::OkStatus();
      lease.device_id.clear();
      lease.expires_ms = 0;
      return WriteLease(conn, lease);
    });
  }

  // Two round trips, each a pipeline: [BEGIN, lock the collection row (head and lease),
  // look for the tx_id, (look for the chunks)], then the checks here, then [write log +
  // head + notification, COMMIT]. The NOTIFY is part of the transaction, so listeners
  // hear of an append exactly when it commits.
  absl::StatusOr<AppendResult> Append(const AppendRecord& a) override {
    AppendResult result;
    absl::Status done = pool_.Transaction([&](Connection& conn) -> absl::Status {
      // Round trip 1: lock the row (head and lease), then, seeing everything committed
      // before the lock was granted, look for the tx_id and the chunks.
      std::vector<std::string_view> ids(a.chunk_ids.begin(), a.chunk_ids.end());
      Params collection, tx, chunks;
      collection.Bytes(a.collection_id);
      tx.Bytes(a.collection_id).Bytes(a.tx_id);
      chunks.Bytes(a.collection_id).BytesArray(ids);
      std::vector<pg::Statement> reads = {
          {"SELECT head_seq, lease_device_id, lease_fencing_token, lease_expires_ms"
           " FROM collections WHERE collection_id = $1 FOR UPDATE",
           &collection},
          {"SELECT seq FROM log WHERE collection_id = $1 AND tx_id = $2", &tx}};
      if (!ids.empty()) reads.push_back({std::string(kHasChunksSql), &chunks});
      FERRY_ASSIGN_OR_RETURN(std::vector<Result> read, conn.Pipeline(reads));
      const Result& row = read[0];
      const Result& dup = read[1];
      if (row.rows() == 0) return absl::NotFoundError("no such collection");
      if (dup.rows() > 0) {
        result = AppendResult{static_cast<uint64_t>(dup.Int(0, 0)), true};
        return absl::OkStatus();
      }
      uint64_t head = static_cast<uint64_t>(row.Int(0, 0));
      LeaseRecord lease = LeaseFromRow(a.collection_id, row, 1);
      FERRY_RETURN_IF_ERROR(CheckAppendFencing(lease, a));
      if (a.base_seq != head) {
        return absl::AbortedError(StrCat("base_seq ", a.base_seq, " is not the head ",
                                         head, ": pull and retry"));
      }
      if (!ids.empty()) {
        std::vector<bool> present = Present(read[2], ids);
        for (size_t i = 0; i < ids.size(); ++i) {
          if (!present[i]) {
            return absl::FailedPreconditionError(StrCat(
                "envelope references chunk ", Hex(ids[i]), " which is not stored"));
          }
        }
      }
      // Round trip 2: the entry, the head, the notification and COMMIT.
      uint64_t seq = head + 1;
      Params write;
      write.Bytes(a.collection_id)
          .Int(static_cast<int64_t>(seq))
          .Bytes(a.tx_id)
          .Bytes(a.device_id)
          .Bytes(a.envelope)
          .Int(static_cast<int64_t>(head));
      FERRY_ASSIGN_OR_RETURN(
          std::vector<Result> written,
          conn.Pipeline(
              {{"WITH appended AS (INSERT INTO log(collection_id, seq, tx_id,"
                " device_id, envelope) VALUES($1, $2, $3, $4, $5)),"
                " moved AS (UPDATE collections SET head_seq = $2"
                " WHERE collection_id = $1 AND head_seq = $6 RETURNING 1)"
                " SELECT (SELECT count(*) FROM moved)::int8,"
                " pg_notify('ferry_heads', encode($1, 'hex') || ' ' || $2::text)",
                &write}},
              /*then_commit=*/true));
      // The row lock makes this certain; a failure here would be a bug in the locking.
      if (written[0].rows() != 1 || written[0].Int(0, 0) != 1) {
        return absl::InternalError("the collection head moved under its row lock");
      }
      result = AppendResult{seq, false};
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    assert(result.seq > 0);
    return result;
  }

  // One statement, so that the head and the entries come from one snapshot. The byte
  // bound is applied in SQL (a running sum), so a page never drags more than it sends.
  absl::StatusOr<PullResult> Pull(std::string_view collection_id, uint64_t after_seq,
                                  uint32_t limit, size_t bytes_max) override {
    PullResult result;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r,
          conn.Exec("SELECT c.head_seq, page.seq, page.envelope FROM collections c"
                    " LEFT JOIN LATERAL (SELECT seq, envelope FROM ("
                    "   SELECT seq, envelope,"
                    "     sum(octet_length(envelope)) OVER (ORDER BY seq) AS upto,"
                    "     row_number() OVER (ORDER BY seq) AS n"
                    "   FROM (SELECT seq, envelope FROM log WHERE collection_id = $1"
                    "         AND seq > $2 ORDER BY seq LIMIT $3) AS first_rows"
                    " ) AS counted WHERE n = 1 OR upto <= $4) AS page ON true"
                    " WHERE c.collection_id = $1 ORDER BY page.seq",
                    Params()
                        .Bytes(collection_id)
                        .Int(static_cast<int64_t>(after_seq))
                        .Int(limit)
                        .Int(static_cast<int64_t>(bytes_max))));
      if (r.rows() == 0) return absl::NotFoundError("no such collection");
      result.entries.clear();
      result.head_seq = static_cast<uint64_t>(r.Int(0, 0));
      for (int i = 0; i < r.rows() && !r.IsNull(i, 1); ++i) {
        result.entries.push_back(
            LogEntry{static_cast<uint64_t>(r.Int(i, 1)), std::string(r.Bytes(i, 2))});
      }
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    assert(result.entries.size() <= limit);
    uint64_t last = result.entries.empty() ? after_seq : result.entries.back().seq;
    result.more = last < result.head_seq;
    return result;
  }

  absl::StatusOr<uint64_t> Head(std::string_view collection_id) override {
    std::optional<uint64_t> head;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r, conn.Exec("SELECT head_seq FROM collections WHERE collection_id = $1",
                              Params().Bytes(collection_id)));
      if (r.rows() > 0) head = static_cast<uint64_t>(r.Int(0, 0));
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    if (!head.has_value()) return absl::NotFoundError("no such collection");
    return *head;
  }

  absl::StatusOr<std::vector<bool>> HasChunks(
      std::string_view collection_id, const std::vector<std::string>& ids) override {
    std::vector<bool> present;
    absl::Status done = Read([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(present,
                             HasChunksIn(conn, collection_id, {ids.begin(), ids.end()}));
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    return present;
  }

  // The bytes go to the chunk store first and are durable there before the index
  // records them: an indexed chunk always has its bytes.
  absl::StatusOr<size_t> PutChunks(
      std::string_view collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    std::vector<std::string> all_ids;
    for (const auto& chunk : chunks) all_ids.push_back(chunk.first);
    FERRY_ASSIGN_OR_RETURN(std::vector<bool> has, HasChunks(collection_id, all_ids));
    std::vector<const ChunkStore::Chunk*> fresh;
    std::set<std::string_view> seen;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!has[i] && seen.insert(chunks[i].first).second) fresh.push_back(&chunks[i]);
    }
    if (fresh.empty()) return 0;
    FERRY_RETURN_IF_ERROR(chunk_store_->Put(collection_id, fresh));
    std::vector<std::string_view> ids;
    std::vector<int64_t> sizes;
    for (const auto* chunk : fresh) {
      ids.push_back(chunk->first);
      sizes.push_back(static_cast<int64_t>(chunk->second.size()));
    }
    int64_t stored = 0;
    absl::Status done = pool_.Transaction([&](Connection& conn) -> absl::Status {
      FERRY_ASSIGN_OR_RETURN(
          Result r,
          conn.Exec("INSERT INTO chunks(collection_id, chunk_id, size)"
                    " SELECT $1, u.id, u.size FROM unnest($2::bytea[],"
                    " $3::int8[]) AS u(id, size) ON CONFLICT DO NOTHING",
                    Params().Bytes(collection_id).BytesArray(ids).IntArray(sizes)));
      stored = r.affected();
      return absl::OkStatus();
    });
    if (!done.ok()) return done;
    assert(stored >= 0 && static_cast<size_t>(stored) <= fresh.size());
    return static_cast<size_t>(stored);
  }

  absl::StatusOr<std::string> GetChunk(std::string_view collection_id,
                                       std::string_view id) override {
    FERRY_ASSIGN_OR_RETURN(std::vector<bool> has,
                           HasChunks(collection_id, {std::string(id)}));
    if (!has[0]) return absl::NotFoundError("chunk not stored");
    absl::StatusOr<std::string> data = chunk_store_->Get(collection_id, id);
    if (absl::IsNotFound(data.status())) {
      return absl::DataLossError(
          StrCat("chunk ", Hex(id), " is indexed but its bytes are missing"));
    }
    return data;
  }

  absl::Status FollowHeads(HeadMoved moved, std::function<void()> maybe_missed) override {
    assert(listener_ == nullptr);
    listener_ = std::make_unique<pg::Listener>(
        pool_.conninfo(), kHeadsChannel,
        [moved = std::move(moved)](std::string_view payload) {
          std::string collection_id;
          uint64_t head = 0;
          if (ParseHeadPayload(payload, &collection_id, &head))
            moved(collection_id, head);
        },
        std::move(maybe_missed));
    return absl::OkStatus();
  }

 private:
  // Reads and idempotent writes: outside a transaction, run again on a lost connection.
  absl::Status Read(const std::function<absl::Status(Connection&)>& body) {
    return pool_.Run(body, /*retry_safe=*/true);
  }

  static LeaseRecord LeaseFromRow(std::string_view collection_id, const Result& r,
                                  int first_column) {
    LeaseRecord lease;
    lease.collection_id = std::string(collection_id);
    lease.device_id = r.Bytes(0, first_column);
    lease.fencing_token = static_cast<uint64_t>(r.Int(0, first_column + 1));
    lease.expires_ms = r.Int(0, first_column + 2);
    return lease;
  }

  static absl::StatusOr<LeaseRecord> LockLease(Connection& conn,
                                               std::string_view collection_id) {
    FERRY_ASSIGN_OR_RETURN(Result r,
                           conn.Exec("SELECT lease_device_id, lease_fencing_token,"
                                     " lease_expires_ms FROM collections"
                                     " WHERE collection_id = $1 FOR UPDATE",
                                     Params().Bytes(collection_id)));
    if (r.rows() == 0) return absl::NotFoundError("no such collection");
    return LeaseFromRow(collection_id, r, 0);
  }

  static absl::Status WriteLease(Connection& conn, const LeaseRecord& lease) {
    return conn
        .Exec(
            "UPDATE collections SET lease_device_id = $2, lease_fencing_token = $3,"
            " lease_expires_ms = $4 WHERE collection_id = $1",
            Params()
                .Bytes(lease.collection_id)
                .Bytes(lease.device_id)
                .Int(static_cast<int64_t>(lease.fencing_token))
                .Int(lease.expires_ms))
        .status();
  }

  static absl::StatusOr<std::vector<bool>> HasChunksIn(
      Connection& conn, std::string_view collection_id,
      const std::vector<std::string_view>& ids) {
    FERRY_ASSIGN_OR_RETURN(
        Result r,
        conn.Exec(kHasChunksSql, Params().Bytes(collection_id).BytesArray(ids)));
    return Present(r, ids);
  }

  // Which of `ids` are among the rows of a kHasChunksSql result.
  static std::vector<bool> Present(const Result& r,
                                   const std::vector<std::string_view>& ids) {
    std::set<std::string_view> found;
    for (int i = 0; i < r.rows(); ++i) found.insert(r.Bytes(i, 0));
    std::vector<bool> present;
    for (std::string_view id : ids) present.push_back(found.count(id) > 0);
    return present;
  }

  // Locks the account's row and counts its rows in `table` (a constant).
  static absl::StatusOr<int64_t> LockAccountAndCount(Connection& conn, const char* table,
                                                     std::string_view account_id) {
    FERRY_ASSIGN_OR_RETURN(
        Result locked,
        conn.Exec("SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE",
                  Params().Bytes(account_id)));
    if (locked.rows() == 0) return absl::NotFoundError("no such account");
    FERRY_ASSIGN_OR_RETURN(Result r, conn.Exec(StrCat("SELECT count(*)::int8 FROM ",
                                                      table, " WHERE account_id = $1"),
                                               Params().Bytes(account_id)));
    return r.Int(0, 0);
  }

  static absl::Status InsertDevice(Connection& conn, const DeviceRecord& d) {
    return conn
        .Exec(StrCat("INSERT INTO devices(", kDeviceColumns,
                     ") VALUES($1,$2,$3,$4,$5,$6,$7)"),
              Params()
                  .Bytes(d.device_id)
                  .Bytes(d.account_id)
                  .Bytes(d.name)
                  .Bytes(d.token_hash)
                  .Int(d.created_ms)
                  .Int(d.last_seen_ms)
                  .Bool(d.revoked))
        .status();
  }

  absl::Status UpdateDevice(const char* sql, const Params& params) {
    int64_t changed = 0;
    // Not retried on a lost connection: the update may have happened. It is
    // idempotent, but "not found" after a successful first run would be wrong.
    absl::Status done = pool_.Run(
        [&](Connection& conn) -> absl::Status {
          FERRY_ASSIGN_OR_RETURN(Result r, conn.Exec(sql, params));
          changed = r.affected();
          return absl::OkStatus();
        },
        /*retry_safe=*/false);
    if (!done.ok()) return done;
    if (changed == 0) return absl::NotFoundError("no such device in this account");
    return absl::OkStatus();
  }

  pg::Pool pool_;
  std::unique_ptr<ChunkStore> chunk_store_;
  std::unique_ptr<pg::Listener> listener_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> OpenPostgresBackend(std::string_view conninfo,
                                                             size_t connections_max) {
  if (connections_max == 0) {
    return absl::InvalidArgumentError("the connection pool needs at least 1 connection");
  }
  auto backend =
      std::make_unique<PostgresBackend>(std::string(conninfo), connections_max);
  FERRY_RETURN_IF_ERROR(backend->Init());
  return backend;
}

}  // namespace ferry::server
