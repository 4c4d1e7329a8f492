// Small, careful file helpers. Every write is atomic: a temporary file in the same
// directory, written fully, fsynced, renamed over the target, and the directory fsynced.
#ifndef FERRY_CORE_FILE_UTIL_H_
#define FERRY_CORE_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry {

// Replaces `path` with `data` atomically; the file gets `mode` (before umask).
absl::Status WriteFileAtomic(const std::string& path, std::string_view data,
                             int mode = 0644);
// Writes `data` to a new file `path` (O_EXCL) without fsync: for batches that make
// many files durable at once with SyncFilesystem.
absl::Status WriteNewFile(const std::string& path, std::string_view data, int mode);
// syncfs(2) of the file system holding `path`: every write and rename on it so far is
// durable when this returns. One call replaces an fsync per file in a batch.
absl::Status SyncFilesystem(const std::string& path);
// Reads a whole file of at most `bytes_max` bytes. NOT_FOUND when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t bytes_max = 64u << 20);
// Creates `path` and missing parents with `mode`; OK when it exists as a directory.
absl::Status MakeDirs(const std::string& path, int mode = 0755);
// fsync of a directory, so that a rename or create in it is durable.
absl::Status SyncDir(const std::string& path);
bool FileExists(const std::string& path);
// The default data folder of program `name`: $XDG_DATA_HOME/name, else
// $HOME/.local/share/name, else ./.name.
std::string DefaultDataDir(std::string_view name);
// An absl::Status for the errno of a failed call on `path`.
absl::Status ErrnoStatus(int error, std::string_view what, std::string_view path);

}  // namespace ferry

#endif  // FERRY_CORE_FILE_UTIL_H_
