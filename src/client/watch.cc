#include "src/client/watch.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "src/client/folder_watch.h"

namespace ferry::client {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// The step of the wait for the server's connection before a Watch stream opens.
constexpr int kConnectStepMs = 250;

// The pause after `pause` in a run of failures: the first, then doubling to the last.
milliseconds NextPause(milliseconds pause, const WatchOptions& options) {
  if (pause.count() == 0) return milliseconds(options.retry_first_ms);
  return std::min(pause * 2, milliseconds(options.retry_max_ms));
}

}  // namespace

struct Watcher::State {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  // Set by the stream reader when a stream delivered its first heads after an earlier
  // one ended: failed syncs are retried at once instead of after their pause.
  bool reconnected = false;
  std::map<std::string, uint64_t> heads;  // collection id -> the latest head heard of
  net::WatchStream* stream = nullptr;     // the open stream, for Stop to cancel
  // Per collection: when its folder first and last changed since its last scan
  // (epoch: not).
  std::vector<Clock::time_point> changed_at;
  std::vector<Clock::time_point> changed_last;
};

Watcher::Watcher(Device& device, std::vector<LocalCollection> collections,
                 WatchOptions options)
    : device_(device),
      collections_(std::move(collections)),
      options_(std::move(options)),
      state_(std::make_unique<State>()) {}

Watcher::~Watcher() = default;

void Watcher::Stop() {
  std::lock_guard lock(state_->mu);
  state_->stop = true;
  if (state_->stream != nullptr) state_->stream->Cancel();
  state_->cv.notify_all();
}

void Watcher::ReadStream() {
  std::vector<std::string> ids;
  for (const LocalCollection& c : collections_) ids.push_back(c.collection_id);
  milliseconds pause{0};  // grows while streams end without a word
  bool ended_before = false;
  for (;;) {
    // While the server is away, gRPC's channel waits between its attempts to
    // reconnect, and a stream opened then fails at once, which would double the pause
    // below for nothing: the stream is opened once the channel is up (waited for in
    // short steps, so that Stop is seen).
    for (;;) {
      {
        std::lock_guard lock(state_->mu);
        if (state_->stop) return;
      }
      if (device_.client().WaitForConnected(kConnectStepMs)) break;
    }
    std::unique_ptr<net::WatchStream> stream = device_.client().Watch(ids);
    {
      std::lock_guard lock(state_->mu);
      if (state_->stop) return;
      state_->stream = stream.get();
    }
    v1::HeadChanged change;
    bool heard = false;
    while (stream->Next(&change)) {
      std::lock_guard lock(state_->mu);
      uint64_t& head = state_->heads[change.collection_id()];
      head = std::max(head, change.head_seq());
      if (!heard && ended_before) state_->reconnected = true;
      heard = true;
      state_->cv.notify_all();
    }
    absl::Status status = stream->Finish();
    {
      std::lock_guard lock(state_->mu);
      state_->stream = nullptr;
      if (state_->stop) return;
    }
    if (options_.on_disconnect) options_.on_disconnect(status);
    ended_before = true;
    pause = NextPause(heard ? milliseconds(0) : pause, options_);
    std::unique_lock lock(state_->mu);
    // Bounded: the pause, or Stop.
    if (state_->cv.wait_for(lock, pause, [&] { return state_->stop; })) return;
  }
}

void Watcher::WatchFolders(FolderWatcher& folders) {
  // Bounded: a stop request is seen within one wait.
  constexpr int kWaitMs = 250;
  for (;;) {
    std::set<size_t> changed = folders.Wait(kWaitMs);
    absl::Status error = folders.TakeError();
    if (!error.ok() && options_.on_folder_error) options_.on_folder_error(error);
    std::lock_guard lock(state_->mu);
    if (state_->stop) return;
    const Clock::time_point now = Clock::now();
    for (size_t i : changed) {
      if (state_->changed_at[i] == Clock::time_point()) state_->changed_at[i] = now;
      state_->changed_last[i] = now;
    }
    if (!changed.empty()) state_->cv.notify_all();
  }
}

void Watcher::Run() {
  struct PerCollection {
    uint64_t synced = 0;  // the head this device has synced to
    bool failed = false;  // the last sync failed: retried at retry_at
    Clock::time_point retry_at;
    milliseconds pause{0};
  };
  std::vector<PerCollection> per(collections_.size());
  const milliseconds interval(options_.rescan_interval_ms);
  Clock::time_point next_rescan = Clock::now();  // everything syncs at once
  const milliseconds settle(options_.settle_ms);
  state_->changed_at.assign(collections_.size(), Clock::time_point());
  state_->changed_last.assign(collections_.size(), Clock::time_point());
  std::thread reader([this] { ReadStream(); });
  // The folders are watched before the first sync, whose scan finds what changed
  // before that.
  std::unique_ptr<FolderWatcher> folder_watcher;
  if (options_.watch_folders) {
    absl::StatusOr<std::unique_ptr<FolderWatcher>> created = FolderWatcher::Create();
    if (created.ok()) {
      folder_watcher = *std::move(created);
      for (size_t i = 0; i < collections_.size(); ++i) {
        absl::Status watched = folder_watcher->Watch(i, collections_[i].root);
        if (!watched.ok() && options_.on_folder_error) options_.on_folder_error(watched);
      }
    } else if (options_.on_folder_error) {
      options_.on_folder_error(created.status());
    }
  }
  std::thread folders;
  if (folder_watcher != nullptr) {
    folders = std::thread([this, &folder_watcher] { WatchFolders(*folder_watcher); });
  }

  for (;;) {
    std::vector<size_t> due;
    // Due only because another device pushed: the sync trusts the shadow for the
    // local data instead of walking the folder (SyncOptions::assume_unchanged); local
    // changes are found by the folder watch or the next rescan.
    std::vector<bool> remote_only(collections_.size(), false);
    Clock::time_point started;  // of the syncs below: changes after it stay pending
    {
      std::unique_lock lock(state_->mu);
      for (;;) {
        if (state_->stop) break;
        if (state_->reconnected) {
          state_->reconnected = false;
          for (PerCollection& p : per) p.retry_at = Clock::time_point();
        }
        Clock::time_point now = Clock::now();
        bool rescan = now >= next_rescan;
        if (rescan) next_rescan = now + interval;
        Clock::time_point wake = next_rescan;
        for (size_t i = 0; i < collections_.size(); ++i) {
          auto head = state_->heads.find(collections_[i].collection_id);
          bool moved = head != state_->heads.end() && head->second > per[i].synced;
          const Clock::time_point changed = state_->changed_at[i];
          bool local = changed != Clock::time_point() && now >= changed + settle;
          if (changed != Clock::time_point() && !local) {
            wake = std::min(wake, changed + settle);
          }
          if (!rescan && !moved && !local && !per[i].failed) continue;
          if (now >= per[i].retry_at) {
            due.push_back(i);
            remote_only[i] = !rescan && !local && !per[i].failed;
          } else {
            wake = std::min(wake, per[i].retry_at);
          }
        }
        if (!due.empty()) {
          started = now;
          break;
        }
        // Bounded: the next rescan or retry; a head change or Stop wakes it sooner.
        state_->cv.wait_until(lock, wake);
      }
      if (state_->stop) break;
    }
    for (size_t i : due) {
      {
        std::lock_guard lock(state_->mu);
        if (state_->stop) break;
      }
      SyncOptions sync_options;
      sync_options.assume_unchanged = remote_only[i];
      absl::StatusOr<SyncReport> report =
          SyncCollection(device_, collections_[i], sync_options);
      PerCollection& p = per[i];
      if (report.ok() && !remote_only[i]) {
        // Scanned: what changed before the sync began is in it; a change during the
        // sync may not be, and keeps the collection due.
        std::lock_guard lock(state_->mu);
        if (state_->changed_last[i] <= started) {
          state_->changed_at[i] = Clock::time_point();
        } else if (state_->changed_at[i] <= started) {
          state_->changed_at[i] = state_->changed_last[i];
        }
      }
      if (report.ok()) {
        p.synced = report->head_seq;
        p.failed = false;
        p.retry_at = Clock::time_point();
        p.pause = milliseconds(0);
      } else {
        p.failed = true;
        p.pause = NextPause(p.pause, options_);
        p.retry_at = Clock::now() + p.pause;
      }
      if (options_.on_sync) options_.on_sync(collections_[i], report);
    }
  }
  reader.join();
  if (folders.joinable()) folders.join();
}

}  // namespace ferry::client
