// The plaintext of recently synced chunks, kept on the device so that an edited chunk
// can be sent as a delta against the chunk it replaces (seal::SealChunkDelta), and a
// delta can be opened when its base is no longer in any local file. One SQLite file,
// bounded in bytes; the least recently used chunks go first. It is a cache: losing it
// costs bandwidth, never data, so it is written without fsync.
//
// Thread-safe.
#ifndef FERRY_ENGINE_CHUNK_CACHE_H_
#define FERRY_ENGINE_CHUNK_CACHE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "src/sqlite/sqlite.h"

namespace ferry::engine {

class ChunkCache {
 public:
  // `bytes_max` bounds the file; `written_max` bounds what this object adds, so that a
  // large initial sync does not write everything twice (it caches its first part).
  static absl::StatusOr<std::unique_ptr<ChunkCache>> Open(const std::string& path,
                                                          uint64_t bytes_max,
                                                          uint64_t written_max);
  // Keeps `plaintext` under `id` (unless `written_max` is used up); evicts the least
  // recently used past the bound.
  absl::Status Put(std::string_view id, std::string_view plaintext);
  // The plaintext kept under `id`, if any.
  std::optional<std::string> Get(std::string_view id);

 private:
  ChunkCache(std::unique_ptr<sqlite::Database> db, uint64_t bytes_max,
             uint64_t written_max)
      : db_(std::move(db)), bytes_max_(bytes_max), written_max_(written_max) {}
  absl::Status Evict();

  std::mutex mu_;
  std::unique_ptr<sqlite::Database> db_;  // guarded by mu_
  const uint64_t bytes_max_;
  const uint64_t written_max_;
  uint64_t written_ = 0;  // guarded by mu_
  uint64_t bytes_ = 0;    // guarded by mu_
  int64_t clock_ = 0;     // guarded by mu_: the last use stamp handed out
};

}  // namespace ferry::engine

#endif  // FERRY_ENGINE_CHUNK_CACHE_H_
