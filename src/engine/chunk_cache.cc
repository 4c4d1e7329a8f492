#include "src/engine/chunk_cache.h"

#include "src/core/status_macros.h"

namespace ferry::engine {
namespace {

constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE chunks(id BLOB PRIMARY KEY, data BLOB NOT NULL, used INTEGER NOT NULL);
CREATE INDEX chunks_by_use ON chunks(used);
)sql",
};
// Rows dropped per eviction step.
constexpr int kEvictBatch = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<ChunkCache>> ChunkCache::Open(const std::string& path,
                                                             uint64_t bytes_max,
                                                             uint64_t written_max) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db,
                         sqlite::Database::Open(path));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=OFF"));
  FERRY_RETURN_IF_ERROR(db->Migrate(kMigrations, std::size(kMigrations)));
  std::unique_ptr<ChunkCache> cache(
      new ChunkCache(std::move(db), bytes_max, written_max));
  FERRY_ASSIGN_OR_RETURN(auto s,
                         cache->db_->Prepare("SELECT COALESCE(SUM(LENGTH(data)), 0), "
                                             "COALESCE(MAX(used), 0) FROM chunks"));
  FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (row) {
    cache->bytes_ = static_cast<uint64_t>(s.ColumnInt(0));
    cache->clock_ = s.ColumnInt(1);
  }
  return cache;
}

absl::Status ChunkCache::Put(std::string_view id, std::string_view plaintext) {
  std::lock_guard lock(mu_);
  if (written_ + plaintext.size() > written_max_) return absl::OkStatus();
  written_ += plaintext.size();
  FERRY_ASSIGN_OR_RETURN(
      auto s, db_->Prepare("INSERT OR IGNORE INTO chunks(id, data, used) VALUES(?,?,?)"));
  FERRY_RETURN_IF_ERROR(s.BindBlob(1, id).BindBlob(2, plaintext).Bind(3, ++clock_).Run());
  if (db_->Changes() == 0) return absl::OkStatus();
  bytes_ += plaintext.size();
  return Evict();
}

absl::Status ChunkCache::Evict() {
  // Each pass drops the oldest batch; bytes_ shrinks every pass, so this ends.
  while (bytes_ > bytes_max_) {
    FERRY_ASSIGN_OR_RETURN(
        auto oldest,
        db_->Prepare("SELECT id, LENGTH(data) FROM chunks ORDER BY used LIMIT ?"));
    oldest.Bind(1, kEvictBatch);
    FERRY_ASSIGN_OR_RETURN(auto drop, db_->Prepare("DELETE FROM chunks WHERE id = ?"));
    int dropped = 0;
    for (;;) {
      FERRY_ASSIGN_OR_RETURN(bool row, oldest.Step());
      if (!row) break;
      drop.Reset();
      FERRY_RETURN_IF_ERROR(drop.BindBlob(1, oldest.ColumnBlobView(0)).Run());
      bytes_ -= std::min<uint64_t>(bytes_, static_cast<uint64_t>(oldest.ColumnInt(1)));
      ++dropped;
    }
    if (dropped == 0) {
      bytes_ = 0;
      break;
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> ChunkCache::Get(std::string_view id) {
  std::lock_guard lock(mu_);
  auto s = db_->Prepare("SELECT data FROM chunks WHERE id = ?");
  if (!s.ok()) return std::nullopt;
  s->BindBlob(1, id);
  auto row = s->Step();
  if (!row.ok() || !*row) return std::nullopt;
  std::string data = s->ColumnBlob(0);
  auto touch = db_->Prepare("UPDATE chunks SET used = ? WHERE id = ?");
  if (touch.ok()) {
    // A failed touch only makes this chunk look older than it is.
    (void)touch->Bind(1, ++clock_).BindBlob(2, id).Run();
  }
  return data;
}

}  // namespace ferry::engine
