// The sync engine: one collection, one device. A Sync() runs the cycle
//   scan -> pull -> merge -> apply -> push
// against the device's shadow (the last synced state) and the collection's log on
// ferryd. Every step can be interrupted at any point and rerun; the result is the same.
#ifndef FERRY_ENGINE_H_
#define FERRY_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "include/ferry/connector.h"

namespace ferry {

namespace net {
class Client;
}
namespace seal {
struct CollectionKey;
}
namespace engine {
class ShadowStore;
class ChunkCache;
}  // namespace engine
namespace files {
class RootDir;
}

// Time, randomness and file access, replaceable for tests and the simulation (the
// transport is EngineConfig::client, an interface of its own). Implementations are
// safe for concurrent use.
class Env {
 public:
  virtual ~Env() = default;
  virtual int64_t NowMs() = 0;
  virtual std::string RandomBytes(size_t n) = 0;
  // The folder `path` that a connector syncs (src/connectors/files/root_dir.h): all
  // its reads and writes go through the RootDir. This default opens it on the real
  // disk (files::RootDir::Open); a simulation returns one of a
  // files::MemFileSystem.
  virtual absl::StatusOr<std::unique_ptr<files::RootDir>> OpenRoot(
      const std::string& path);
  // The process-wide real environment.
  static Env* Default();
};

struct SyncOptions {
  // Deletions are pushed even when the data is gone or emptied, or a scan would
  // delete more than `mass_delete_fraction` of the items.
  bool allow_mass_delete = false;
  double mass_delete_fraction = 0.5;
  // Skip the local scan: take the local data to be as the shadow says it was synced
  // (Connector::ScanUnchanged), and only pull and apply what other devices pushed.
  // For a device that was told of a remote push and rescans on its own schedule
  // (`ferry watch`). Ignored, and a real scan made, when the shadow holds items whose
  // local state is in doubt (refused writes or deletes, unpushed changes), and for
  // every cycle after the first (a write the local data refused).
  bool assume_unchanged = false;
  // Hold the collection's lease while merging and pushing, so that devices take turns.
  bool use_lease = true;
  uint32_t lease_ttl_ms = 60000;
  // Called now and then with what has been done so far (from the syncing thread).
  std::function<void(const struct SyncReport&)> progress;
};

struct SyncReport {
  uint64_t pulled_transactions = 0;
  uint64_t pulled_items = 0;  // local objects written, moved or deleted
  uint64_t pulled_bytes = 0;  // chunk bytes downloaded (sealed) + envelopes
  uint64_t pushed_transactions = 0;
  uint64_t pushed_items = 0;  // ops appended
  uint64_t pushed_bytes = 0;  // chunk bytes uploaded (sealed) + envelopes
  uint64_t uploaded_chunks = 0;
  uint64_t downloaded_chunks = 0;
  uint64_t local_chunks = 0;  // chunks taken from local data instead of downloaded
  uint64_t conflicts = 0;
  uint64_t scanned_items = 0;
  uint64_t scanned_bytes = 0;  // content read by the scan
  uint64_t head_seq = 0;
  std::vector<std::pair<std::string, std::string>> skipped;  // (object, reason)
  std::vector<std::string> deferred;  // items changed during the sync: next sync
};

struct EngineConfig {
  std::string collection_id;
  std::string device_id;
  const seal::CollectionKey* key = nullptr;
  net::Client* client = nullptr;
  Connector* connector = nullptr;
  engine::ShadowStore* shadow = nullptr;
  // Optional: recent chunk plaintexts, so edits travel as deltas (engine/chunk_cache.h).
  engine::ChunkCache* cache = nullptr;
  Env* env = nullptr;  // nullptr: Env::Default()
};

// Runs one sync of one collection. FAILED_PRECONDITION when the mass-deletion guard
// holds (the message says why), or the shadow belongs to another connector.
absl::StatusOr<SyncReport> Sync(const EngineConfig& config, const SyncOptions& options);

}  // namespace ferry

#endif  // FERRY_ENGINE_H_
