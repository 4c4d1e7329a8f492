// Tells `ferry watch` when the data in a collection's folder changed (Linux inotify),
// so that local changes are synced within a moment rather than at the next rescan.
// It watches every directory of each folder (symbolic links are not followed), adds
// directories as they appear, and says which folders had events; it never says what
// changed: the sync's scan finds that, as always. Events it cannot account for (the
// kernel's queue overflowed) mark every folder. Where a watch cannot be added (the
// per-user limit, fs.inotify.max_user_watches), Watch reports it and the folder falls
// back to the periodic rescan alone.
//
// Thread-compatible: one thread calls Wait.
#ifndef FERRY_CLIENT_FOLDER_WATCH_H_
#define FERRY_CLIENT_FOLDER_WATCH_H_

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::client {

class FolderWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<FolderWatcher>> Create();
  ~FolderWatcher();
  FolderWatcher(const FolderWatcher&) = delete;
  FolderWatcher& operator=(const FolderWatcher&) = delete;

  // Watches the tree at `root` as folder `folder`: `root` itself may be a symbolic
  // link (the connector opens it so too), nothing below it is followed. A missing root
  // watches nothing. An error leaves what was added so far watched.
  absl::Status Watch(size_t folder, const std::string& root);

  // Waits at most `timeout_ms` for events, then returns the folders that had any
  // (empty when none came). Watches directories created meanwhile; an error adding
  // one is kept for `TakeError`.
  std::set<size_t> Wait(int timeout_ms);

  // The first error since the last call (OK when none): a watch that could not be
  // added, or the inotify descriptor failing.
  absl::Status TakeError();

 private:
  explicit FolderWatcher(int fd) : fd_(fd) {}
  // Watches `dir` and every directory below it, as part of `folder`.
  absl::Status AddTree(size_t folder, const std::string& dir);
  // Stops watching `dir` and everything below it.
  void Unwatch(const std::string& dir);
  void Note(const absl::Status& status);

  const int fd_;                                        // owned; the inotify instance
  std::map<int, std::pair<size_t, std::string>> dirs_;  // watch -> (folder, path)
  std::vector<std::pair<size_t, std::string>> roots_;   // (folder, resolved root)
  absl::Status error_;
};

}  // namespace ferry::client

#endif  // FERRY_CLIENT_FOLDER_WATCH_H_
