// Where a backend keeps the bytes of chunks. The backend keeps the index (which chunk
// ids a collection has) in its own database, so that Append checks chunk references in
// the same transaction as the rest; the bytes go to a ChunkStore. The PostgreSQL
// backend stores them in PostgreSQL itself; an object store (S3 and the like) can
// implement this interface later without touching the backend's transactions.
//
// Implementations are safe for concurrent use from many threads.
#ifndef FERRY_SERVER_BACKEND_CHUNK_STORE_H_
#define FERRY_SERVER_BACKEND_CHUNK_STORE_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::server {

class ChunkStore {
 public:
  using Chunk = std::pair<std::string, std::string>;  // (id, sealed bytes)

  virtual ~ChunkStore() = default;

  // Stores every chunk durably before returning OK; a chunk stored already is kept as
  // it is (chunks are content-addressed, so its bytes are the same). Idempotent.
  // REQUIRES: ids are distinct.
  virtual absl::Status Put(std::string_view collection_id,
                           const std::vector<const Chunk*>& chunks) = 0;
  // NOT_FOUND when the chunk's bytes are not stored.
  virtual absl::StatusOr<std::string> Get(std::string_view collection_id,
                                          std::string_view id) = 0;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_BACKEND_CHUNK_STORE_H_
