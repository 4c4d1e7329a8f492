// RootDir: a synced folder, and the only way ferry reads or changes it.
//
// An interface with two implementations: the real disk (disk_root_dir.h, RootDir::Open)
// and an in-memory file system for tests and the simulation (mem_file_system.h). Both
// keep every contract below; the connectors get theirs from Env::OpenRoot.
//
// Nothing is ever read or written outside the folder. Symbolic links in the folder are
// items of their own: they are read and written as links, never followed, neither as
// the last component of a path nor on the way to it. Every path is checked with
// ValidateRelativePath first.
//
// Every file write is atomic: a temporary file ".ferry-tmp-<16 hex digits>" is written
// in the target's directory, made durable and renamed over the target, and the
// directory made durable.
//
// Errors name the operation, the relative path and the cause. Refusals caused by what
// is on disk (a symbolic link or a file where a directory must be, a directory where a
// file must be, a non-empty directory) are FAILED_PRECONDITION; an Expect that does not
// hold is ABORTED.
//
// A RootDir is thread-compatible and its methods are const: concurrent calls are safe,
// but two calls that change the same path race as they would in any program.
// Walking a path needs search permission on each directory in it, and read
// permission too where the kernel lacks openat2 (disk_root_dir.cc). Calls are per file or
// per buffer, never per byte, so the cost of a virtual call does not show.
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
#include <vector>

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

// Stamps (what a connector saw of a file, to skip reading it next time) and the
// "racy" file: two writes within one tick of the file system's clock, same size,
// leave size, mtime, inode and mode all equal, so a stamp taken between them would
// hide the second. A stamp taken while the file's mtime is less than
// kRacyWindowMs old (or in the future) carries kRacyMark and is never trusted: the
// next scan reads the file again, and trusts it once its mtime has aged. 2 s covers
// the coarsest common clock (FAT); ext4 and tmpfs tick every few milliseconds.
inline constexpr int64_t kRacyWindowMs = 2000;
inline constexpr char kRacyMark = '~';

// `stamp` with kRacyMark appended when `stat` is racy at `now_ms`.
std::string MarkIfRacy(std::string stamp, const FileStat& stat, int64_t now_ms);

// True when an object whose stamp is now `fresh` may be taken as unchanged since
// `old` was recorded: equal, and `old` was not racy.
bool StampUnchanged(const std::string& old, const std::string& fresh);
// True when `a` and `b` are equal but for kRacyMark: the same object, unchanged as far
// as its stat tells (Connector::SameStamp).
bool SameStampIgnoringRace(std::string_view a, std::string_view b);

// An open regular file. Reads see the file that was opened, also after it is renamed
// or replaced; not thread-safe (one reader per thread). A reader does not outlive the
// RootDir that opened it.
class FileReader {
 public:
  virtual ~FileReader() = default;
  // Reads from the current offset, which moves on, until `size` bytes are in `out` or
  // the file ends; returns the bytes read (fewer than `size` only at the end).
  virtual absl::StatusOr<size_t> Read(char* out, size_t size) = 0;
  // The same at `offset`, leaving the current offset alone.
  virtual absl::StatusOr<size_t> ReadAt(uint64_t offset, char* out, size_t size) = 0;
};

// The new contents of a file being written (ReplaceFile, WriteTemp).
class FileWriter {
 public:
  virtual ~FileWriter() = default;
  // Appends `data`, all of it, or returns the error (RESOURCE_EXHAUSTED: disk full).
  virtual absl::Status Append(std::string_view data) = 0;
  // Appends each of `pieces` in order, as Append does. A disk file takes them in one
  // gathered write, so a page shared by two pieces is copied once, not zero-filled
  // and then overwritten.
  virtual absl::Status AppendAll(const std::vector<std::string>& pieces) {
    for (const std::string& piece : pieces) {
      absl::Status status = Append(piece);
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }
};

// Fills a FileWriter; its error is returned by the write as-is.
using WriteFn = std::function<absl::Status(FileWriter& out)>;

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

  // Opens the directory `path` on disk (a symbolic link is followed here, and only
  // here). NOT_FOUND if it does not exist, FAILED_PRECONDITION if it is not a
  // directory. (MemFileSystem::OpenRoot is the in-memory counterpart.)
  static absl::StatusOr<std::unique_ptr<RootDir>> Open(const std::string& path);

  RootDir() = default;
  virtual ~RootDir() = default;
  RootDir(const RootDir&) = delete;
  RootDir& operator=(const RootDir&) = delete;

  // The path given to Open().
  virtual const std::string& path() const = 0;

  // lstat of `rel`. nullopt when it does not exist, including when a directory on the
  // way to it is missing or is not a directory (a symbolic link, a file): such a path
  // names nothing in the folder.
  virtual absl::StatusOr<std::optional<FileStat>> Stat(std::string_view rel) const = 0;

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
  // read; the callbacks may have been called for some entries by then. The callbacks
  // may call this RootDir: they run on the calling thread. On disk, several threads
  // read the directories first (one per core, up to 3, once the tree has more than a
  // few directories) and the callbacks then replay what they read, in the order
  // above; the walk holds at most 64 queued directory descriptors plus one per level
  // per thread.
  virtual absl::Status Walk(
      const std::function<void(const std::string& rel, const FileStat& stat)>& visit,
      const std::function<void(const std::string& rel, const std::string& why)>& skipped,
      size_t entries_max) const = 0;

  // Opens the regular file `rel` for reading. FAILED_PRECONDITION when `rel` is a
  // symbolic link or not a regular file (a FIFO is never waited on); NOT_FOUND when it
  // does not exist.
  virtual absl::StatusOr<std::unique_ptr<FileReader>> OpenForRead(
      std::string_view rel) const = 0;

  // The target of the symbolic link `rel`, as stored. FAILED_PRECONDITION when `rel`
  // is not a symbolic link or its target is longer than kSymlinkTargetBytesMax.
  virtual absl::StatusOr<std::string> ReadLink(std::string_view rel) const = 0;

  // Atomically replaces (or creates) the file `rel`. Missing parent directories are
  // created with mode 0755 (they stay if the call then fails). `write` writes the
  // contents to a temporary file in the target's directory (its error is returned
  // as-is); the file then gets the permission bits `mode & 0777` (set-id and sticky
  // bits are never set; any bit outside 07777 is INVALID_ARGUMENT) and the modification
  // time `mtime_ns`, is made durable (fsync), and `expect` is checked against the
  // target (ABORTED "changed since scan" when it does not hold; must_be_absent is
  // enforced atomically by the rename) before the temporary file is renamed over it
  // and the directory made durable. The target may be absent, a file, a symbolic link
  // (replaced, not followed) or other non-directory; FAILED_PRECONDITION when it is a
  // directory. On any failure the temporary file is removed and the target is as it
  // was.
  virtual absl::Status ReplaceFile(std::string_view rel, const WriteFn& write,
                                   uint32_t mode, int64_t mtime_ns,
                                   const Expect& expect) const = 0;

  // Like ReplaceFile, for a symbolic link to `target`, which is stored as-is and never
  // followed by ferry. INVALID_ARGUMENT when `target` is empty, holds a NUL or is longer
  // than kSymlinkTargetBytesMax.
  absl::Status ReplaceSymlink(std::string_view rel, std::string_view target,
                              const Expect& expect) const {
    return ReplaceSymlinkImpl(rel, target, expect, /*sync=*/true);
  }
  // ReplaceSymlink without flushing, for batches: the link (and the parents it
  // creates) are durable once SyncAll returns.
  absl::Status ReplaceSymlinkUnsynced(std::string_view rel, std::string_view target,
                                      const Expect& expect) const {
    return ReplaceSymlinkImpl(rel, target, expect, /*sync=*/false);
  }

  // Creates the directory `rel` and missing parents (parents with mode 0755), then
  // sets its permission bits to `mode & 0777` (also when it already existed).
  // FAILED_PRECONDITION when `rel` or a parent exists and is not a directory.
  absl::Status MakeDir(std::string_view rel, uint32_t mode) const {
    return MakeDirImpl(rel, mode, /*sync=*/true);
  }
  // MakeDir without flushing, for batches: the directories it creates are durable once
  // SyncAll returns.
  absl::Status MakeDirUnsynced(std::string_view rel, uint32_t mode) const {
    return MakeDirImpl(rel, mode, /*sync=*/false);
  }

  // Removes the file, symbolic link or empty directory `rel` after checking `expect`
  // (ABORTED when it does not hold; a change in the short time between the check and
  // the unlink is not detected). OK when `rel` does not exist (whatever `expect` says).
  // FAILED_PRECONDITION for a directory that is not empty.
  virtual absl::Status Remove(std::string_view rel, const Expect& expect) const = 0;

  // Renames `from` to `to` within the folder after checking both expectations; missing
  // parents of `to` are created (they stay if the call then fails). When
  // to_expect.must_be_absent, the rename does not replace an existing `to` (atomically:
  // renameat2 RENAME_NOREPLACE), else it replaces it as rename(2) does. NOT_FOUND when
  // `from` does not exist.
  virtual absl::Status Rename(std::string_view from, std::string_view to,
                              const Expect& from_expect,
                              const Expect& to_expect) const = 0;

  // True when `name` (one component) is a temporary file name of ReplaceFile or
  // ReplaceSymlink.
  static bool IsTempName(std::string_view name);

  // Two-phase writes, for batches. WriteTemp writes the new contents of `rel` into a
  // temporary file beside it (checking `expect` first, as ReplaceFile does, and
  // creating missing parents), without flushing; SyncAll makes every such file durable at
  // once; CommitTemp then checks `expect` again and renames the file into place. A second
  // SyncAll makes the renames durable. A batch of files costs two flushes instead of two
  // per file, and a crash at any point leaves each target either as it was or complete. A
  // PendingFile destroyed before CommitTemp removes its temporary file. A PendingFile is
  // used with the RootDir that made it, and does not outlive it.
  class PendingFile {
   public:
    virtual ~PendingFile() = default;
    PendingFile(const PendingFile&) = delete;
    PendingFile& operator=(const PendingFile&) = delete;
    const std::string& rel() const { return rel_; }
    const RootDir* owner() const { return owner_; }

   protected:
    PendingFile(const RootDir* owner, std::string rel)
        : owner_(owner), rel_(std::move(rel)) {}

   private:
    const RootDir* owner_;
    std::string rel_;
  };
  virtual absl::StatusOr<std::unique_ptr<PendingFile>> WriteTemp(
      std::string_view rel, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
      const Expect& expect) const = 0;
  // Returns the lstat of what is at the path right after the rename (nullopt when
  // something removed it already), taken through the directory the file was written
  // in rather than by walking the path again.
  // REQUIRES: pending.owner() == this.
  virtual absl::StatusOr<std::optional<FileStat>> CommitTemp(
      PendingFile& pending, const Expect& expect) const = 0;
  virtual absl::Status SyncAll() const = 0;

 protected:
  // MakeDir and ReplaceSymlink, flushing what they create when `sync`.
  virtual absl::Status MakeDirImpl(std::string_view rel, uint32_t mode,
                                   bool sync) const = 0;
  virtual absl::Status ReplaceSymlinkImpl(std::string_view rel, std::string_view target,
                                          const Expect& expect, bool sync) const = 0;
};

// Checks shared by the implementations, so that both refuse alike.
// INVALID_ARGUMENT when both fields of `expect` are set.
absl::Status ValidateExpect(const RootDir::Expect& expect);
// INVALID_ARGUMENT for mode bits beyond 07777.
absl::Status ValidateMode(uint32_t mode);
// INVALID_ARGUMENT for a symbolic link target that is empty, holds a NUL or is too long.
absl::Status ValidateSymlinkTarget(std::string_view rel, std::string_view target);
// ABORTED "<rel> changed since scan" when `expect` does not hold of `current`.
absl::Status CheckExpect(const RootDir::Expect& expect,
                         const std::optional<FileStat>& current, std::string_view rel);
// INVALID_ARGUMENT when `to` lies inside `from`.
absl::Status CheckNotIntoItself(std::string_view from, std::string_view to);
// The prefix of temporary names (IsTempName).
inline constexpr std::string_view kTempNamePrefix = ".ferry-tmp-";
// kTempNamePrefix followed by the 16 hex digits of `bits`.
std::string TempName(uint64_t bits);

// Which temporary files of ferry's a scan removes as left over from a crash (both
// connectors' rule).
struct LeftoverTemps {
  // Those untouched (ctime) this long: another process may still be writing newer ones.
  int64_t age_ms = 3600 * 1000;
  // This process holds the folder's lock (src/client/collections.cc): nobody else
  // writes in it, so every one is left over, however recent its ctime (a clock that
  // went back makes a leftover look new).
  bool all = false;
  // Whether the temporary file `stat`, found by a scan that began at `scan_ms`, is.
  bool Includes(const FileStat& stat, int64_t scan_ms) const {
    return stat.type == FileStat::kFile &&
           (all || stat.ctime_ns < (scan_ms - age_ms) * int64_t{1000000});
  }
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_ROOT_DIR_H_
