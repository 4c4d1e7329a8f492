// Moving chunks between a device and the store: uploading what the store lacks, and
// resolving chunks for a connector that writes content (local data first, then the
// store).
#ifndef FERRY_ENGINE_TRANSFER_H_
#define FERRY_ENGINE_TRANSFER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "include/ferry/connector.h"
#include "include/ferry/engine.h"
#include "src/engine/chunk_cache.h"
#include "src/engine/items.h"
#include "src/net/client.h"
#include "src/seal/seal.h"

namespace ferry::engine {

struct TransferContext {
  std::string collection_id;
  const seal::CollectionKey* key = nullptr;
  const seal::ContentHasher* hasher = nullptr;
  net::Client* client = nullptr;
  Connector* connector = nullptr;
  SyncReport* report = nullptr;
  ChunkCache* cache = nullptr;      // optional: enables deltas
  const ItemMap* synced = nullptr;  // for uploads: the items patches apply to
};

// For each chunk the patches in `ops` splice in, the chunk of the `synced` version it
// replaces (the one it overlaps most, by byte range), which the receiver has: the new
// chunk can travel as a delta against it.
std::map<std::string, std::string> DeltaBases(const ItemMap& synced,
                                              const std::vector<v1::Op>& ops);

// Uploads every chunk that `ops` reference and the store lacks, reading content from
// the local items `local` through the connector.
absl::Status UploadMissingChunks(const TransferContext& context,
                                 const std::vector<v1::Op>& ops,
                                 const std::map<std::string, LocalItem>& local);

// A ChunkSource that reads chunks from local objects where the scan saw them, checks
// each against its id, and downloads the rest.
class EngineChunkSource final : public ChunkSource {
 public:
  EngineChunkSource(const TransferContext& context,
                    const std::map<std::string, LocalItem>& local);
  absl::StatusOr<std::vector<std::string>> Fetch(
      const std::vector<v1::ChunkRef>& refs) override;

  // Downloads, in few large requests, the chunks among `refs` that no local object
  // holds, and keeps them for the Fetch calls that follow. Replaces what an earlier
  // Prefetch kept. The caller bounds the total size.
  absl::Status Prefetch(const std::vector<v1::ChunkRef>& refs);

  // Prefetch in two halves, so that the download of the next batch, and the opening
  // of its chunks, can run on another thread while this one is written: Wanted()
  // lists what Prefetch would download; FetchAhead() downloads it and opens each chunk
  // that is not a delta (thread-safe: it only uses the client, the key, the hasher and
  // the cache); Install() opens the deltas, whose bases may be in local data, and keeps
  // it all as Prefetch does.
  using SealedChunks = std::vector<std::pair<std::string, std::string>>;
  struct Fetched {
    SealedChunks chunks;  // (id, plaintext) where opened[i], else (id, sealed)
    std::vector<bool> opened;
    uint64_t sealed_bytes = 0;  // as downloaded
  };
  std::vector<v1::ChunkRef> Wanted(const std::vector<v1::ChunkRef>& refs) const;
  static absl::StatusOr<Fetched> FetchAhead(const TransferContext& context,
                                            const std::vector<v1::ChunkRef>& wanted);
  absl::Status Install(const std::vector<v1::ChunkRef>& wanted, Fetched fetched);

 private:
  // Opens `sealed` (the answers for `refs`, in order), freeing each sealed chunk once
  // it is open, so a batch is never held twice over.
  absl::StatusOr<std::vector<std::string>> Open(const std::vector<v1::ChunkRef>& refs,
                                                SealedChunks sealed, int depth);
  // Opens one chunk, `base` being the plaintext of its delta base if it is a delta;
  // checks its size against `ref` and keeps what the cache wants of it.
  static absl::StatusOr<std::string> OpenOne(const TransferContext& context,
                                             const v1::ChunkRef& ref,
                                             std::string_view sealed,
                                             std::optional<std::string_view> base);
  // OpenOne with the base of a delta resolved (ResolveBase; `depth` deltas deep).
  absl::StatusOr<std::string> OpenWithBase(const v1::ChunkRef& ref,
                                           std::string_view sealed, int depth);
  absl::StatusOr<std::vector<std::string>> Download(const std::vector<v1::ChunkRef>& refs,
                                                    int depth = 0);
  // The plaintext of the base of a delta chunk: local data, the cache, or the store.
  absl::StatusOr<std::string> ResolveBase(const std::string& id, int depth);

  struct Place {
    std::string item_id;
    std::string field;
    uint64_t offset = 0;
    uint32_t size = 0;
  };
  std::optional<std::string> ReadLocal(const v1::ChunkRef& ref);

  TransferContext context_;
  std::map<std::string, Place>& Places() const;

  const std::map<std::string, LocalItem>* local_;
  mutable bool indexed_ = false;
  mutable std::map<std::string, Place> places_;  // chunk id -> where local data holds it
  std::map<std::string, std::string> prefetched_;  // chunk id -> plaintext
};

}  // namespace ferry::engine

#endif  // FERRY_ENGINE_TRANSFER_H_
