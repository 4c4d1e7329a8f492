// RootDir: a synced folder on disk, and the only way ferry reads or changes it.
//
// The folder is opened once as a directory file descriptor and every operation is
// relative to it. A path is walked one component at a time with
// openat(O_DIRECTORY | O_NOFOLLOW), and the last component is handled by *at() calls
// that never follow a symbolic link, so nothing is ever read or written outside the
// folder, even when a directory in it is swapped for a symbolic link at any moment.
// Symbolic links in the folder are items of their own: they are read and written as
// links, never followed. Every path is checked with ValidateRelativePath first.
//
// Every file write is atomic: a temporary file ".ferry-tmp-<random>" is written in the
// target's directory, fsynced and renamed over the target, and the directory fsynced.
//
// Errors name the operation, the relative path and the cause. Refusals caused by what
// is on disk (a symbolic link or a file where a directory must be, a directory where a
// file must be, a non-empty directory) are FAILED_PRECONDITION; an Expect that does not
// hold is ABORTED.
//
// A RootDir is thread-compatible and its methods are const: concurrent calls are safe,
// but two calls that change the same path race as they would in any program.
// Walking a path needs read permission on each directory in it.
#ifndef FERRY_CONNECTORS_FILES_ROOT_DIR_H_
#define FERRY_CONNECTORS_FILES_ROOT_DIR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ferry::files {

// Bytes of a symbolic link's target (PATH_MAX less the terminating NUL on Linux).
inline constexpr size_t kSymlinkTargetBytesMax = 4095;

// What lstat says of an entry.
struct FileStat {
  enum Type { kFile, kDir, kSymlink, kOther };  // kOther: FIFO, socket, device
  Type type = kOther;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // nanoseconds since the Unix epoch, saturated to int64
  uint64_t inode = 0;
  uint32_t mode = 0;  // permission bits, st_mode & 07777
  // Status-change time: moves on every write, rename and chmod and cannot be set, so
  // it tells how long an entry has been left alone. Not compared by SameFile.
  int64_t ctime_ns = 0;
};

// True when type, size, mtime_ns, inode and mode of `a` and `b` are equal.
bool SameFile(const FileStat& a, const FileStat& b);

class RootDir {
 public:
  // What must hold of a path right before it is changed. With neither field set,
  // nothing is checked; setting both is INVALID_ARGUMENT.
  struct Expect {
    bool must_be_absent = false;
    // The path must exist and SameFile() must hold with this. (A directory's size and
    // mtime change whenever its entries do.)
    std::optional<FileStat> unchanged = std::nullopt;
  };

  // Opens the directory `path` (a symbolic link is followed here, and only here).
  // NOT_FOUND if it does not exist, FAILED_PRECONDITION if it is not a directory.
  static absl::StatusOr<std::unique_ptr<RootDir>> Open(const std::string& path);

  ~RootDir();
  RootDir(const RootDir&) = delete;
  RootDir& operator=(const RootDir&) = delete;

  // The path given to Open().
  const std::string& path() const { return path_; }

  // lstat of `rel`. nullopt when it does not exist, including when a directory on the
  // way to it is missing or is not a directory (a symbolic link, a file): such a path
  // names nothing in the folder.
  absl::StatusOr<std::optional<FileStat>> Stat(std::string_view rel) const;

  // Walks the whole folder without following symbolic links, calling
  // visit(rel_path, stat) for every entry except the folder itself: parents before
  // their children, names in bytewise order within a directory. Temporary files
  // (IsTempName) are visited like any file; the caller ignores them or removes stale
  // ones.
  //
  // `skipped(rel_path, why)` (may be empty) is called instead of `visit` for an entry
  // whose path is not valid per ValidateRelativePath (a bad name, or a path deeper than
  // kPathDepthMax or longer than kPathBytesMax; rel_path may then hold any bytes and
  // must be escaped before printing), and after `visit` for a directory that could not
  // be entered because it was replaced during the walk. Entries that vanish during the
  // walk are left out silently. Nothing below a skipped entry is read.
  //
  // RESOURCE_EXHAUSTED once more than `entries_max` entries (visited or skipped) are
  // read; the callbacks may have been called for some entries by then.
  // Holds one open descriptor per directory level during the walk.
  absl::Status Walk(
      const std::function<void(const std::string& rel, const FileStat& stat)>& visit,
      const std::function<void(const std::string& rel, const std::string& why)>& skipped,
      size_t entries_max) const;

  // Opens the regular file `rel` for reading (O_RDONLY | O_NOFOLLOW | O_CLOEXEC); the
  // caller closes the descriptor. FAILED_PRECONDITION when `rel` is a symbolic link or
  // not a regular file (a FIFO is never waited on).
  absl::StatusOr<int> OpenForRead(std::string_view rel) const;

  // The target of the symbolic link `rel`, as stored. FAILED_PRECONDITION when `rel`
  // is not a symbolic link or its target is longer than kSymlinkTargetBytesMax.
  absl::StatusOr<std::string> ReadLink(std::string_view rel) const;

  // Atomically replaces (or creates) the file `rel`. Missing parent directories are
  // created with mode 0755 (they stay if the call then fails). `write(fd)` writes the
  // contents to a temporary file in the target's directory, open for reading and
  // writing (it must not close `fd`; its error is returned as-is); the file then gets the
  // permission bits `mode & 0777` (set-id and sticky bits are never set; any bit
  // outside 07777 is INVALID_ARGUMENT) and the modification time `mtime_ns`, is
  // fsynced, and `expect` is checked against the target (ABORTED "changed since scan"
  // when it does not hold; must_be_absent is enforced atomically by the rename) before
  // the temporary file is renamed over it and the directory fsynced. The target may be
  // absent, a file, a symbolic link (replaced, not followed) or other non-directory;
  // FAILED_PRECONDITION when it is a directory. On any failure the temporary file is
  // removed.
  absl::Status ReplaceFile(std::string_view rel,
                           const std::function<absl::Status(int fd)>& write,
                           uint32_t mode, int64_t mtime_ns, const Expect& expect) const;

  // Like ReplaceFile, for a symbolic link to `target`, which is stored as-is and never
  // followed by ferry. INVALID_ARGUMENT when `target` is empty, holds a NUL or is longer
  // than kSymlinkTargetBytesMax.
  absl::Status ReplaceSymlink(std::string_view rel, std::string_view target,
                              const Expect& expect) const;

  // Creates the directory `rel` and missing parents (parents with mode 0755), then
  // sets its permission bits to `mode & 0777` (also when it already existed).
  // FAILED_PRECONDITION when `rel` or a parent exists and is not a directory.
  absl::Status MakeDir(std::string_view rel, uint32_t mode) const;

  // Removes the file, symbolic link or empty directory `rel` after checking `expect`
  // (ABORTED when it does not hold; a change in the short time between the check and
  // the unlink is not detected). OK when `rel` does not exist (whatever `expect` says).
  // FAILED_PRECONDITION for a directory that is not empty.
  absl::Status Remove(std::string_view rel, const Expect& expect) const;

  // Renames `from` to `to` within the folder after checking both expectations; missing
  // parents of `to` are created (they stay if the call then fails). When
  // to_expect.must_be_absent, the rename does not replace an existing `to` (renameat2
  // RENAME_NOREPLACE), else it replaces it as rename(2) does. NOT_FOUND when `from` does
  // not exist.
  absl::Status Rename(std::string_view from, std::string_view to,
                      const Expect& from_expect, const Expect& to_expect) const;

  // True when `name` (one component) is a temporary file name of ReplaceFile or
  // ReplaceSymlink.
  static bool IsTempName(std::string_view name);

  // Two-phase writes, for batches. WriteTemp writes the new contents of `rel` into a
  // temporary file beside it (checking `expect` first, as ReplaceFile does), without
  // flushing; SyncAll makes every such file durable at once; CommitTemp then checks
  // `expect` again and renames the file into place. A second SyncAll makes the renames
  // durable. A batch of files costs two flushes instead of two per file, and a crash
  // at any point leaves each target either as it was or complete. A PendingFile
  // destroyed before CommitTemp removes its temporary file.
  class PendingFile {
   public:
    ~PendingFile();
    PendingFile(const PendingFile&) = delete;
    PendingFile& operator=(const PendingFile&) = delete;
    const std::string& rel() const { return rel_; }

   private:
    friend class RootDir;
    PendingFile() = default;
    int dir_fd_ = -1;  // the target's directory; owned unless it is the root
    bool owns_dir_fd_ = false;
    std::string rel_, leaf_, temp_;
  };
  absl::StatusOr<std::unique_ptr<PendingFile>> WriteTemp(
      std::string_view rel, const std::function<absl::Status(int fd)>& write,
      uint32_t mode, int64_t mtime_ns, const Expect& expect) const;
  absl::Status CommitTemp(PendingFile& pending, const Expect& expect) const;
  absl::Status SyncAll() const;

 private:
  RootDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  const std::string path_;
  const int fd_;  // owned; O_RDONLY | O_DIRECTORY
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_ROOT_DIR_H_
