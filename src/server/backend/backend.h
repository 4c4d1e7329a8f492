// The storage interface of ferryd. The Manage and Store services speak only to this
// interface; an implementation owns durability and atomicity. SQLite + files is the
// embedded default; PostgreSQL lets several ferryd share one database.
//
// All implementations are safe for concurrent use from many threads. Every method
// that changes state is atomic: it happens entirely or not at all.
#ifndef FERRY_SERVER_BACKEND_BACKEND_H_
#define FERRY_SERVER_BACKEND_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::server {

struct AccountRecord {
  std::string account_id;
  std::string user;
  uint32_t kdf_alg = 0;
  uint64_t kdf_ops_limit = 0;
  uint64_t kdf_mem_limit_bytes = 0;
  std::string kdf_salt;
  std::string auth_key_hash;
  int64_t created_ms = 0;
};

struct DeviceRecord {
  std::string device_id;
  std::string account_id;
  std::string name;
  std::string token_hash;
  int64_t created_ms = 0;
  int64_t last_seen_ms = 0;
  bool revoked = false;
};

struct CollectionRecord {
  std::string collection_id;
  std::string account_id;
  std::string metadata;
  std::string wrapped_key;
  uint32_t key_epoch = 0;
  int64_t created_ms = 0;
};

struct LeaseRecord {
  std::string collection_id;
  std::string device_id;  // the holder; empty when released
  uint64_t fencing_token = 0;
  int64_t expires_ms = 0;
};

// One append, as checked by the backend in a single transaction.
struct AppendRecord {
  std::string collection_id;
  std::string tx_id;
  std::string device_id;
  uint64_t base_seq = 0;
  std::string envelope;                // stored as is
  std::vector<std::string> chunk_ids;  // each must be stored already
  uint64_t fencing_token = 0;          // 0: the device holds no lease
  int64_t now_ms = 0;
};

struct AppendResult {
  uint64_t seq = 0;
  bool duplicate = false;  // tx_id was already in the log
};

struct LogEntry {
  uint64_t seq = 0;
  std::string envelope;
};

struct PullResult {
  std::vector<LogEntry> entries;
  uint64_t head_seq = 0;
  bool more = false;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // A stable name ("sqlite", "postgresql"), written in the data directory and checked.
  virtual std::string_view Name() const = 0;

  // Accounts. ALREADY_EXISTS when the user name is taken.
  virtual absl::Status CreateAccount(const AccountRecord& account,
                                     const DeviceRecord& first_device) = 0;
  // NOT_FOUND when there is no such user.
  virtual absl::StatusOr<AccountRecord> GetAccountByUser(std::string_view user) = 0;

  // Devices. RESOURCE_EXHAUSTED past kDevicesPerAccountMax.
  virtual absl::Status CreateDevice(const DeviceRecord& device) = 0;
  // NOT_FOUND when no device has this token hash. Revoked devices are returned as such.
  virtual absl::StatusOr<DeviceRecord> GetDeviceByTokenHash(
      std::string_view token_hash) = 0;
  virtual absl::StatusOr<std::vector<DeviceRecord>> ListDevices(
      std::string_view account_id) = 0;
  // NOT_FOUND when the device is not one of the account's.
  virtual absl::Status RenameDevice(std::string_view account_id,
                                    std::string_view device_id,
                                    std::string_view name) = 0;
  virtual absl::Status RevokeDevice(std::string_view account_id,
                                    std::string_view device_id) = 0;
  virtual absl::Status TouchDevice(std::string_view device_id, int64_t now_ms) = 0;

  // Collections. ALREADY_EXISTS when the id is taken; RESOURCE_EXHAUSTED past
  // kCollectionsPerAccountMax.
  virtual absl::Status CreateCollection(const CollectionRecord& collection) = 0;
  // NOT_FOUND when there is no such collection (of any account).
  virtual absl::StatusOr<CollectionRecord> GetCollection(
      std::string_view collection_id) = 0;
  virtual absl::StatusOr<std::vector<CollectionRecord>> ListCollections(
      std::string_view account_id) = 0;

  // Leases. Acquire gives a new, larger fencing token when the lease is free, expired or
  // already held by `device_id`; FAILED_PRECONDITION when another device holds it.
  virtual absl::StatusOr<LeaseRecord> AcquireLease(std::string_view collection_id,
                                                   std::string_view device_id,
                                                   int64_t now_ms, int64_t ttl_ms) = 0;
  // Extends the lease when `device_id` holds it with `token` and it has not expired;
  // FAILED_PRECONDITION otherwise.
  virtual absl::StatusOr<LeaseRecord> RenewLease(std::string_view collection_id,
                                                 std::string_view device_id,
                                                 uint64_t token, int64_t now_ms,
                                                 int64_t ttl_ms) = 0;
  // Frees the lease when `device_id` holds it with `token`; OK when it is free or
  // expired; FAILED_PRECONDITION while another device or token holds it.
  virtual absl::Status ReleaseLease(std::string_view collection_id,
                                    std::string_view device_id, uint64_t token,
                                    int64_t now_ms) = 0;

  // The log. Append is compare-and-append, in one transaction with these checks, in
  // this order: a stored tx_id returns its seq with duplicate=true; a lease held (not
  // expired) by another device, or a fencing token other than the current lease's,
  // gives FAILED_PRECONDITION; base_seq != head gives ABORTED; a chunk id not stored
  // gives FAILED_PRECONDITION. Returns only once the append is durable.
  virtual absl::StatusOr<AppendResult> Append(const AppendRecord& append) = 0;
  // Entries with seq > after_seq, in order, at most `limit` of them and about
  // `bytes_max` bytes (always at least one when there is one).
  virtual absl::StatusOr<PullResult> Pull(std::string_view collection_id,
                                          uint64_t after_seq, uint32_t limit,
                                          size_t bytes_max) = 0;
  virtual absl::StatusOr<uint64_t> Head(std::string_view collection_id) = 0;

  // Chunks, content-addressed within a collection.
  virtual absl::StatusOr<std::vector<bool>> HasChunks(
      std::string_view collection_id, const std::vector<std::string>& ids) = 0;
  // Stores (id, data) chunks durably, as one batch; returns how many were new (the
  // others were stored already). A chunk is recorded only once its data is durable.
  virtual absl::StatusOr<size_t> PutChunks(
      std::string_view collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) = 0;
  // NOT_FOUND when the chunk is not stored.
  virtual absl::StatusOr<std::string> GetChunk(std::string_view collection_id,
                                               std::string_view id) = 0;

  // Heads moved by other processes that share this backend's database. From then on,
  // and until the backend is destroyed, calls `moved(collection_id, head_seq)` for
  // appends made anywhere (this process included), and `maybe_missed()` after a gap in
  // which notifications may have been lost (the caller re-reads the heads it cares
  // about). Both are called from a thread of the backend. An embedded backend has no
  // other writers: the default does nothing.
  // REQUIRES: called at most once.
  using HeadMoved = std::function<void(const std::string& collection_id, uint64_t)>;
  virtual absl::Status FollowHeads(HeadMoved moved, std::function<void()> maybe_missed) {
    return absl::OkStatus();
  }
};

// Opens (creating when missing) the embedded store in `data_dir`: ferry.db (SQLite,
// WAL, synchronous=FULL, versioned migrations) and chunks/ (one file per chunk).
absl::StatusOr<std::unique_ptr<Backend>> OpenSqliteBackend(std::string_view data_dir);

// Opens the PostgreSQL database named by `conninfo` (a postgresql:// URI or a libpq
// key=value string), applying missing schema migrations (once, even when several
// ferryd start together). Accounts, devices, collections, leases, the log and the
// chunks all live in that database, so any number of ferryd can share it.
// `connections_max` bounds the connection pool.
absl::StatusOr<std::unique_ptr<Backend>> OpenPostgresBackend(std::string_view conninfo,
                                                             size_t connections_max = 12);

}  // namespace ferry::server

#endif  // FERRY_SERVER_BACKEND_BACKEND_H_
