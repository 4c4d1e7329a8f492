// Continuous sync (`ferry watch`): a device that stays online keeps its collections in
// sync by itself. It syncs each collection at once; then whenever ferryd's Watch
// stream says a collection's head moved past what this device has synced (another
// device pushed); a moment after its folder changed (inotify, where available); and
// every rescan interval, which finds what the folder watch cannot report. A lost
// connection is retried with growing pauses; a new stream starts with every collection's
// current head, so what was pushed meanwhile is synced then, and failed syncs are retried
// at once.
#ifndef FERRY_CLIENT_WATCH_H_
#define FERRY_CLIENT_WATCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "include/ferry/engine.h"
#include "src/client/collections.h"
#include "src/client/device.h"

namespace ferry::client {

class FolderWatcher;

struct WatchOptions {
  // Every collection is synced (and so its data rescanned) at least this often.
  int64_t rescan_interval_ms = 60000;
  // After a failed sync of a collection, the pause before the next attempt grows
  // from the first to the last value, doubling (a sync the head moved for waits too).
  int64_t retry_first_ms = 1000;
  int64_t retry_max_ms = 60000;
  // Called on the watching thread after every sync, with its outcome.
  std::function<void(const LocalCollection&, const absl::StatusOr<SyncReport>&)> on_sync;
  // Called when the Watch stream ends (the server went away); Run reconnects.
  std::function<void(const absl::Status&)> on_disconnect;
  // Watch the collections' folders for changes (inotify) and sync a collection this
  // long after the first change in its folder; false: only the rescan finds them.
  bool watch_folders = true;
  int64_t settle_ms = 1000;
  // Called (from another thread) when a folder cannot be watched, or not wholly: its
  // changes then wait for the rescan.
  std::function<void(const absl::Status&)> on_folder_error;
};

class Watcher {
 public:
  Watcher(Device& device, std::vector<LocalCollection> collections, WatchOptions options);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Syncs until Stop(); returns after the sync in progress, if any, is done.
  void Run();
  // Thread-safe (not async-signal-safe: call it from a thread that waited for the
  // signal).
  void Stop();

 private:
  struct State;
  void ReadStream();
  // Marks collections whose folder changed (State::changed_at) until Stop.
  void WatchFolders(FolderWatcher& folders);
  Device& device_;
  std::vector<LocalCollection> collections_;
  WatchOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace ferry::client

#endif  // FERRY_CLIENT_WATCH_H_
