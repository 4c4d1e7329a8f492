// Tells Watch streams when a collection's head moves. Fed by this process's appends and,
// with a backend shared by several ferryd (PostgreSQL), by the backend's notifications
// of appends made through the others (Backend::FollowHeads).
#ifndef FERRY_SERVER_HEAD_NOTIFIER_H_
#define FERRY_SERVER_HEAD_NOTIFIER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ferry::server {

class HeadNotifier {
 public:
  // Records that `collection_id` has reached `head_seq` (never moves a head back).
  void Publish(const std::string& collection_id, uint64_t head_seq) {
    {
      std::lock_guard lock(mu_);
      uint64_t& head = heads_[collection_id];
      if (head_seq <= head) return;
      head = head_seq;
      ++version_;
    }
    changed_.notify_all();
  }

  // Waits until the version differs from `seen_version`, `timeout` passes or Shutdown();
  // returns the current version.
  uint64_t Wait(uint64_t seen_version, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    changed_.wait_for(lock, timeout,
                      [&] { return version_ != seen_version || shut_down_; });
    return version_;
  }

  // The last published head of `collection_id`, 0 when none was published.
  uint64_t Head(const std::string& collection_id) {
    std::lock_guard lock(mu_);
    auto it = heads_.find(collection_id);
    return it == heads_.end() ? 0 : it->second;
  }

  // Every collection a head was published for.
  std::vector<std::string> Collections() {
    std::lock_guard lock(mu_);
    std::vector<std::string> ids;
    ids.reserve(heads_.size());
    for (const auto& [id, head] : heads_) ids.push_back(id);
    return ids;
  }

  uint64_t Version() {
    std::lock_guard lock(mu_);
    return version_;
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      shut_down_ = true;
    }
    changed_.notify_all();
  }

  bool IsShutDown() {
    std::lock_guard lock(mu_);
    return shut_down_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, uint64_t> heads_;  // guarded by mu_
  uint64_t version_ = 0;                   // guarded by mu_
  bool shut_down_ = false;                 // guarded by mu_
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_HEAD_NOTIFIER_H_
