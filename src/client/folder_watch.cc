#include "src/client/folder_watch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>
#include <vector>

#include "src/core/file_util.h"
#include "src/core/strings.h"

namespace ferry::client {
namespace {

namespace fs = std::filesystem;

// What counts as a change of the folder's data. IN_DONT_FOLLOW: a symbolic link to a
// directory is an entry of the folder, not a part of it; IN_ONLYDIR: a directory
// replaced by something else meanwhile is not watched.
constexpr uint32_t kEvents = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE |
                             IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |
                             IN_MOVE_SELF | IN_DONT_FOLLOW | IN_ONLYDIR;
// Directories watched per folder walk, a bound on the work one call can do; more are
// left to the periodic rescan (and reported).
constexpr size_t kDirsPerTreeMax = 1'000'000;
// Reads of the event queue per Wait.
constexpr int kReadsPerWaitMax = 16;

// ErrnoStatus, saying what a full watch table means (inotify_add_watch's ENOSPC).
absl::Status WatchError(int err, const std::string& path) {
  absl::Status status = ErrnoStatus(err, "watch", path);
  if (err != ENOSPC) return status;
  return absl::Status(status.code(),
                      StrCat(status.message(),
                             " (the limit fs.inotify.max_user_watches is reached; local "
                             "changes are found by the periodic rescan)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FolderWatcher>> FolderWatcher::Create() {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "inotify_init1", "for the folder watch");
  return std::unique_ptr<FolderWatcher>(new FolderWatcher(fd));
}

FolderWatcher::~FolderWatcher() { ::close(fd_); }

void FolderWatcher::Note(const absl::Status& status) {
  if (error_.ok() && !status.ok()) error_ = status;
}

absl::Status FolderWatcher::TakeError() {
  absl::Status error = std::move(error_);
  error_ = absl::OkStatus();
  return error;
}

absl::Status FolderWatcher::Watch(size_t folder, const std::string& root) {
  // The root itself is followed, as the connector opens it; nothing below it is.
  std::error_code ec;
  fs::path resolved = fs::canonical(root, ec);
  if (ec) return absl::OkStatus();  // missing: the sync's scan reports it
  roots_.emplace_back(folder, resolved.string());
  return AddTree(folder, resolved.string());
}

absl::Status FolderWatcher::AddTree(size_t folder, const std::string& dir) {
  std::vector<std::string> pending{dir};
  size_t added = 0;
  while (!pending.empty()) {
    std::string path = std::move(pending.back());
    pending.pop_back();
    if (++added > kDirsPerTreeMax) {
      return absl::ResourceExhaustedError(
          StrCat(dir, ": more than ", kDirsPerTreeMax, " directories to watch"));
    }
    int wd = ::inotify_add_watch(fd_, path.c_str(), kEvents);
    if (wd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;  // gone, or not a directory
      return WatchError(errno, path);
    }
    dirs_[wd] = {folder, path};
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      // symlink_status: a link is never followed into another tree.
      std::error_code type_ec;
      if (it->symlink_status(type_ec).type() == fs::file_type::directory) {
        pending.push_back(it->path().string());
      }
    }
  }
  return absl::OkStatus();
}

void FolderWatcher::Unwatch(const std::string& dir) {
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    const std::string& path = it->second.second;
    if (path == dir || (path.starts_with(dir) && path[dir.size()] == '/')) {
      ::inotify_rm_watch(fd_, it->first);  // its IN_IGNORED then finds nothing
      it = dirs_.erase(it);
    } else {
      ++it;
    }
  }
}

std::set<size_t> FolderWatcher::Wait(int timeout_ms) {
  std::set<size_t> changed;
  pollfd p{fd_, POLLIN, 0};
  int ready = ::poll(&p, 1, timeout_ms);
  if (ready <= 0) {
    if (ready < 0 && errno != EINTR) Note(ErrnoStatus(errno, "poll", "the folder watch"));
    return changed;
  }
  alignas(inotify_event) char buffer[64 * (sizeof(inotify_event) + NAME_MAX + 1)];
  std::vector<std::pair<size_t, std::string>> new_dirs;
  bool overflow = false;
  // Bounded, so that a steady stream of events cannot keep the caller here: what is
  // left is read by the next call.
  for (int reads = 0; reads < kReadsPerWaitMax; ++reads) {
    ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        Note(ErrnoStatus(errno, "read", "the folder watch"));
      }
      break;
    }
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_Q_OVERFLOW) {  // events were lost: any folder may have changed
        for (const auto& [folder, root] : roots_) changed.insert(folder);
        overflow = true;
        continue;
      }
      auto dir = dirs_.find(event->wd);
      if (dir == dirs_.end()) continue;
      if (event->mask & IN_IGNORED) {  // the directory is gone
        dirs_.erase(dir);
        continue;
      }
      changed.insert(dir->second.first);
      if (!(event->mask & IN_ISDIR) || event->len == 0) continue;
      std::string path = StrCat(dir->second.second, "/", event->name);
      if (event->mask & IN_MOVED_FROM) {
        // Moved away, perhaps out of the tree: its watches go; if it was moved within
        // the tree, its new name's IN_MOVED_TO adds them again under the new paths.
        Unwatch(path);
      } else if (event->mask & (IN_CREATE | IN_MOVED_TO)) {
        new_dirs.emplace_back(dir->second.first, std::move(path));
      }
    }
  }
  if (overflow) {
    // Directories made while events were lost are found by walking each folder
    // again (a directory watched already keeps its watch).
    for (const auto& [folder, root] : roots_) Note(AddTree(folder, root));
  } else {
    for (const auto& [folder, path] : new_dirs) Note(AddTree(folder, path));
  }
  return changed;
}

}  // namespace ferry::client
