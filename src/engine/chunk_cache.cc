#include "src/engine/chunk_cache.h"

#include <algorithm>
#include <utility>

#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::engine {
namespace {

constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE chunks(id BLOB PRIMARY KEY, data BLOB NOT NULL, used INTEGER NOT NULL);
CREATE INDEX chunks_by_use ON chunks(used);
)sql",
    R"sql(
CREATE TABLE signatures(id BLOB PRIMARY KEY, data BLOB NOT NULL, used INTEGER NOT NULL);
CREATE INDEX signatures_by_use ON signatures(used);
)sql",
};
// Rows dropped per eviction step.
constexpr int kEvictBatch = 64;
// Signatures written per SQLite transaction.
constexpr size_t kSignatureBatch = 256;

// One integer a query returns (0 for no row or NULL).
absl::StatusOr<int64_t> QueryInt(sqlite::Database& db, const std::string& sql) {
  FERRY_ASSIGN_OR_RETURN(auto s, db.Prepare(sql));
  FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
  return row && !s.ColumnIsNull(0) ? s.ColumnInt(0) : 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChunkCache>> ChunkCache::Open(
    const std::string& path, uint64_t bytes_max, uint64_t written_max,
    uint64_t signature_bytes_max) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db,
                         sqlite::Database::Open(path));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=OFF"));
  FERRY_RETURN_IF_ERROR(db->Migrate(kMigrations, std::size(kMigrations)));
  std::unique_ptr<ChunkCache> cache(
      new ChunkCache(std::move(db), bytes_max, written_max, signature_bytes_max));
  // MAX(used) is read from the indexes; the sizes, which take reading the whole file,
  // only when something is added (a sync that moves nothing never needs them).
  FERRY_ASSIGN_OR_RETURN(int64_t chunks,
                         QueryInt(*cache->db_, "SELECT MAX(used) FROM chunks"));
  FERRY_ASSIGN_OR_RETURN(int64_t signatures,
                         QueryInt(*cache->db_, "SELECT MAX(used) FROM signatures"));
  cache->clock_ = std::max(chunks, signatures);
  return cache;
}

absl::Status ChunkCache::LoadSizesLocked() {
  if (sizes_loaded_) return absl::OkStatus();
  FERRY_ASSIGN_OR_RETURN(int64_t chunks,
                         QueryInt(*db_, "SELECT SUM(LENGTH(data)) FROM chunks"));
  FERRY_ASSIGN_OR_RETURN(int64_t signatures,
                         QueryInt(*db_, "SELECT SUM(LENGTH(data)) FROM signatures"));
  bytes_ = static_cast<uint64_t>(chunks);
  signature_bytes_ = static_cast<uint64_t>(signatures);
  sizes_loaded_ = true;
  return absl::OkStatus();
}

ChunkCache::~ChunkCache() {
  (void)Flush();  // a cache: what is not written costs bandwidth later, nothing else
}

absl::Status ChunkCache::PutSignatures(std::string_view id, std::string signatures) {
  if (signatures.empty()) return absl::OkStatus();
  std::lock_guard lock(mu_);
  pending_signatures_.insert_or_assign(std::string(id), std::move(signatures));
  if (pending_signatures_.size() < kSignatureBatch) return absl::OkStatus();
  return FlushLocked();
}

std::optional<std::string> ChunkCache::GetSignatures(std::string_view id) {
  std::lock_guard lock(mu_);
  auto pending = pending_signatures_.find(id);
  if (pending != pending_signatures_.end()) return pending->second;
  return GetLocked("signatures", id);
}

std::optional<std::string> ChunkCache::GetLocked(const char* table, std::string_view id) {
  auto s = db_->Prepare(StrCat("SELECT data FROM ", table, " WHERE id = ?"));
  if (!s.ok()) return std::nullopt;
  s->BindBlob(1, id);
  auto row = s->Step();
  if (!row.ok() || !*row) return std::nullopt;
  std::string data = s->ColumnBlob(0);
  auto touch = db_->Prepare(StrCat("UPDATE ", table, " SET used = ? WHERE id = ?"));
  if (touch.ok()) {
    // A failed touch only makes this row look older than it is.
    (void)touch->Bind(1, ++clock_).BindBlob(2, id).Run();
  }
  return data;
}

absl::Status ChunkCache::Flush() {
  std::lock_guard lock(mu_);
  return FlushLocked();
}

absl::Status ChunkCache::FlushLocked() {
  if (pending_signatures_.empty()) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(LoadSizesLocked());
  std::map<std::string, std::string, std::less<>> batch;
  batch.swap(pending_signatures_);
  FERRY_ASSIGN_OR_RETURN(auto tx, sqlite::Transaction::Begin(db_.get()));
  FERRY_ASSIGN_OR_RETURN(
      auto s,
      db_->Prepare("INSERT OR IGNORE INTO signatures(id, data, used) VALUES(?,?,?)"));
  for (const auto& [id, data] : batch) {
    s.Reset();
    FERRY_RETURN_IF_ERROR(s.BindBlob(1, id).BindBlob(2, data).Bind(3, ++clock_).Run());
    if (db_->Changes() != 0) signature_bytes_ += data.size();
  }
  FERRY_RETURN_IF_ERROR(Evict("signatures", &signature_bytes_, signature_bytes_max_));
  return tx.Commit();
}

absl::Status ChunkCache::Put(std::string_view id, std::string_view plaintext) {
  std::lock_guard lock(mu_);
  if (written_ + plaintext.size() > written_max_) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(LoadSizesLocked());
  written_ += plaintext.size();
  FERRY_ASSIGN_OR_RETURN(
      auto s, db_->Prepare("INSERT OR IGNORE INTO chunks(id, data, used) VALUES(?,?,?)"));
  FERRY_RETURN_IF_ERROR(s.BindBlob(1, id).BindBlob(2, plaintext).Bind(3, ++clock_).Run());
  if (db_->Changes() == 0) return absl::OkStatus();
  bytes_ += plaintext.size();
  return Evict("chunks", &bytes_, bytes_max_);
}

absl::Status ChunkCache::Evict(const char* table, uint64_t* bytes, uint64_t max) {
  // Each pass drops from the oldest batch; *bytes shrinks every pass, so this ends.
  while (*bytes > max) {
    FERRY_ASSIGN_OR_RETURN(auto oldest,
                           db_->Prepare(StrCat("SELECT id, LENGTH(data) FROM ", table,
                                               " ORDER BY used LIMIT ?")));
    oldest.Bind(1, kEvictBatch);
    FERRY_ASSIGN_OR_RETURN(auto drop,
                           db_->Prepare(StrCat("DELETE FROM ", table, " WHERE id = ?")));
    int dropped = 0;
    while (*bytes > max) {
      FERRY_ASSIGN_OR_RETURN(bool row, oldest.Step());
      if (!row) break;
      drop.Reset();
      FERRY_RETURN_IF_ERROR(drop.BindBlob(1, oldest.ColumnBlobView(0)).Run());
      *bytes -= std::min<uint64_t>(*bytes, static_cast<uint64_t>(oldest.ColumnInt(1)));
      ++dropped;
    }
    if (dropped == 0) {
      *bytes = 0;
      break;
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> ChunkCache::Get(std::string_view id) {
  std::lock_guard lock(mu_);
  return GetLocked("chunks", id);
}

}  // namespace ferry::engine
