#include "src/client/watch.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace ferry::client {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

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
  std::thread reader([this] { ReadStream(); });

  for (;;) {
    std::vector<size_t> due;
    // Due only because another device pushed: the sync trusts the shadow for the
    // local data instead of walking the folder (SyncOptions::assume_unchanged); local
    // changes are found by the next rescan.
    std::vector<bool> remote_only(collections_.size(), false);
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
          if (!rescan && !moved && !per[i].failed) continue;
          if (now >= per[i].retry_at) {
            due.push_back(i);
            remote_only[i] = !rescan && !per[i].failed;
          } else {
            wake = std::min(wake, per[i].retry_at);
          }
        }
        if (!due.empty()) break;
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
}

}  // namespace ferry::client
