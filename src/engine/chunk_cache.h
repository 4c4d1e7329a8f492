// The plaintext of recently edited chunks, kept on the device so that a chunk edited
// again can be sent as a delta against the chunk it replaces (seal::SealChunkDelta),
// and a delta can be opened when its base is no longer in any local file; and the
// block signatures of every chunk synced (seal::ContentHasher::BlockSignatures, 2.3%
// of a chunk's size), for a block delta (seal::SealChunkBlockDelta) when the plaintext
// is gone. Which chunks go in is the engine's choice (engine/transfer.cc).
// One SQLite file, each part bounded in bytes; the least recently used go first. It is
// a cache: losing it costs bandwidth, never data, so it is written without fsync.
//
// Thread-safe.
#ifndef FERRY_ENGINE_CHUNK_CACHE_H_
#define FERRY_ENGINE_CHUNK_CACHE_H_

#include <cstdint>
#include <functional>
#include <map>
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
  // `signature_bytes_max` bounds the signatures.
  static absl::StatusOr<std::unique_ptr<ChunkCache>> Open(
      const std::string& path, uint64_t bytes_max, uint64_t written_max,
      uint64_t signature_bytes_max = uint64_t{64} << 20);
  ~ChunkCache();
  // Keeps `plaintext` under `id` (unless `written_max` is used up); evicts the least
  // recently used past the bound.
  absl::Status Put(std::string_view id, std::string_view plaintext);
  // The plaintext kept under `id`, if any.
  std::optional<std::string> Get(std::string_view id);

  // Keeps the block signatures of chunk `id` ("" is not kept). Written in batches:
  // Flush (or the destructor) writes the rest.
  absl::Status PutSignatures(std::string_view id, std::string signatures);
  // The signatures kept under `id`, if any.
  std::optional<std::string> GetSignatures(std::string_view id);
  absl::Status Flush();

 private:
  ChunkCache(std::unique_ptr<sqlite::Database> db, uint64_t bytes_max,
             uint64_t written_max, uint64_t signature_bytes_max)
      : db_(std::move(db)),
        bytes_max_(bytes_max),
        written_max_(written_max),
        signature_bytes_max_(signature_bytes_max) {}
  // Drops the least recently used rows of `table` until `*bytes` <= `max`.
  absl::Status Evict(const char* table, uint64_t* bytes, uint64_t max);
  absl::Status FlushLocked();
  absl::Status LoadSizesLocked();
  // The data of row `id` of `table` ("chunks" or "signatures"), marked as just used.
  std::optional<std::string> GetLocked(const char* table, std::string_view id);

  std::mutex mu_;
  std::unique_ptr<sqlite::Database> db_;  // guarded by mu_
  const uint64_t bytes_max_;
  const uint64_t written_max_;
  const uint64_t signature_bytes_max_;
  bool sizes_loaded_ = false;     // guarded by mu_: bytes_, signature_bytes_ set
  uint64_t written_ = 0;          // guarded by mu_
  uint64_t bytes_ = 0;            // guarded by mu_
  uint64_t signature_bytes_ = 0;  // guarded by mu_
  int64_t clock_ = 0;             // guarded by mu_: the last use stamp handed out
  // Signatures not written yet, by chunk id. Guarded by mu_.
  std::map<std::string, std::string, std::less<>> pending_signatures_;
};

}  // namespace ferry::engine

#endif  // FERRY_ENGINE_CHUNK_CACHE_H_
