// MemFileSystem: a file system in memory, for tests and the simulation. OpenRoot gives
// a RootDir over one of its directories that keeps every contract of RootDir
// (root_dir.h), as the disk does: symbolic links are never followed, Expect is checked
// right before each change (must_be_absent atomically), refusals are
// FAILED_PRECONDITION, temporary files are named as on disk, every file has its own
// inode and a replaced file gets a new one, ctime moves on every change.
//
// Durability model. Each file has its contents as last fsynced, and each directory its
// entries as last fsynced; Crash() throws away everything else, as a power cut would:
//  - a file's contents (with its mode and mtime) are durable when the file is fsynced
//    (ReplaceFile does; WriteTemp does not) or by SyncAll; a file whose entry is durable
//    but whose contents never were comes back empty;
//  - a directory's entries (creates, renames, removes in it, and the mode of its
//    subdirectories and links) are durable when that directory is fsynced (ReplaceFile,
//    ReplaceSymlink, MakeDir, Remove and Rename sync the directories they change) or by
//    SyncAll; so an unsynced WriteTemp vanishes, and a CommitTemp before the second
//    SyncAll is undone;
//  - SyncAll (syncfs) makes everything durable, in every directory of the file system.
// This is stricter than a journaling file system (which commits a rename as one
// transaction): an entry renamed between two directories is durable in each once that
// directory is synced. If a crash then finds a file or directory at two places, it is
// kept at the first in a walk in name order (as a file system check would do).
// Changes made through the direct-access helpers below (another program) are durable
// only after SyncAll().
//
// Faults: InjectFault makes matching operations fail with a given status, from inside
// the file system, so a RootDir call fails at that step exactly as it would on disk
// (a failed write removes the temporary file and leaves the target as it was; a failed
// directory sync after a rename leaves the rename done but not durable).
//
// Thread-safe: one mutex guards the whole tree. The callbacks of RootDir::Walk and the
// write callbacks of ReplaceFile / WriteTemp run without it held, so they may call the
// file system (a test changes a file while it is being replaced).
#ifndef FERRY_CONNECTORS_FILES_MEM_FILE_SYSTEM_H_
#define FERRY_CONNECTORS_FILES_MEM_FILE_SYSTEM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/connectors/files/root_dir.h"

namespace ferry::files {

// The steps of RootDir calls that a fault can fail.
enum class FsOp {
  kAny,
  kStat,      // Stat
  kWalk,      // Walk: reading one directory
  kOpen,      // OpenForRead
  kRead,      // FileReader::Read / ReadAt
  kReadLink,  // ReadLink
  kCreate,    // creating a temporary file or a symbolic link
  kWrite,     // FileWriter::Append
  kSync,      // fsync of a file or a directory, SyncAll
  kRename,    // renaming into place (ReplaceFile, CommitTemp, Rename)
  kMkdir,     // creating a directory (MakeDir, missing parents)
  kRemove,    // Remove
};

class MemFileSystem {
 public:
  // `now_ns` gives the time for mtime and ctime (empty: the system clock); it is
  // called with the file system's mutex held and must not call back into it.
  explicit MemFileSystem(std::function<int64_t()> now_ns = nullptr);
  ~MemFileSystem();
  MemFileSystem(const MemFileSystem&) = delete;
  MemFileSystem& operator=(const MemFileSystem&) = delete;

  // A RootDir over the directory `path` (absolute, "/a/b"; symbolic links are
  // followed here, and only here). NOT_FOUND if it does not exist,
  // FAILED_PRECONDITION if it is not a directory. The RootDir holds the directory
  // itself (as a descriptor would): it stays valid when the directory is renamed. The
  // file system must outlive it.
  absl::StatusOr<std::unique_ptr<RootDir>> OpenRoot(const std::string& path);

  // Makes everything durable (syncfs).
  void SyncAll();
  // Makes `path` durable as an fsync of it and of every directory above it would: a
  // file's data, a directory's entries, and the entries leading to it (so a file or
  // a removal there survives Crash()). A missing `path`: the directories that exist
  // on the way. Faults do not apply.
  void SyncPath(const std::string& path);
  // A power cut: every file and directory goes back to its durable state (see the
  // model above). RootDirs, readers and pending files opened before belong to the
  // crashed process: their calls fail with UNAVAILABLE; open new ones. Injected faults
  // are cleared.
  void Crash();

  // Operations matching `op` (kAny: every step) on `path_prefix` or below it ("":
  // everywhere; a path is the target's absolute path in this file system, for a
  // Rename either end) fail with `status` after `skip` matching ones pass, `count`
  // times (-1: for ever). The status keeps its code; its message is prefixed with the
  // step and path.
  struct Fault {
    FsOp op = FsOp::kAny;
    std::string path_prefix;
    absl::Status status = absl::InternalError("injected fault");
    int skip = 0;
    int count = 1;
  };
  void InjectFault(Fault fault);
  void ClearFaults();
  // How many times a fault fired.
  uint64_t faults_fired() const;

  // Direct access, as another program on the machine would have (the user editing
  // files between a scan and an apply). Paths are absolute; a symbolic link on the way
  // is FAILED_PRECONDITION, never followed. Faults do not apply. Not durable until
  // SyncAll().
  //
  // Creates or overwrites the file `path` in place (an existing file keeps its inode),
  // creating missing parents (0755). mtime is `mtime_ns`, or now.
  absl::Status WriteFile(const std::string& path, std::string_view data,
                         uint32_t mode = 0644,
                         std::optional<int64_t> mtime_ns = std::nullopt);
  // Creates the directory `path` and missing parents; OK when it is a directory.
  absl::Status Mkdir(const std::string& path, uint32_t mode = 0755);
  // Creates the symbolic link `path` to `target` (stored as-is); parents must exist.
  absl::Status Symlink(const std::string& path, std::string_view target);
  // Creates a FIFO `path` (a FileStat::kOther entry); parents must exist.
  absl::Status MakeFifo(const std::string& path);
  // Removes `path` and everything below it. NOT_FOUND when it does not exist.
  absl::Status RemoveAll(const std::string& path);
  // rename(2) of `from` to `to`; the parent of `to` must exist.
  absl::Status Rename(const std::string& from, const std::string& to);
  absl::StatusOr<std::optional<FileStat>> Stat(const std::string& path) const;
  absl::StatusOr<std::string> ReadFile(const std::string& path) const;
  // Names in the directory `path`, in bytewise order.
  absl::StatusOr<std::vector<std::string>> List(const std::string& path) const;

  // A file, directory or link (internal; defined in the .cc file).
  struct Node;
  using NodePtr = std::shared_ptr<Node>;

 private:
  friend class MemRootDir;
  friend class MemReader;
  friend class MemWriter;
  friend class MemPendingFile;
  // The directory holding the last component of an absolute path, and that component.
  struct Location {
    NodePtr dir;
    std::string leaf;
  };

  NodePtr NewNode(int type, uint32_t mode);  // REQUIRES: mu_ held
  void Touch(Node& node);                    // ctime = now; REQUIRES: mu_ held
  void EntriesChanged(Node& dir);            // mtime = ctime = now; REQUIRES: mu_ held
  // The parent of `path` must exist, or is created (0755). REQUIRES: mu_ held.
  absl::StatusOr<Location> Locate(const std::string& path) const;
  absl::StatusOr<Location> LocateCreating(const std::string& path);
  absl::Status MaybeFail(FsOp op, std::string_view path);  // REQUIRES: mu_ held
  absl::Status MaybeFail2(FsOp op, std::string_view a, std::string_view b);
  void SyncFile(Node& file);  // REQUIRES: mu_ held
  void SyncDir(Node& dir);    // REQUIRES: mu_ held
  void SyncTree(Node& dir);   // REQUIRES: mu_ held

  mutable std::mutex mu_;
  std::function<int64_t()> now_ns_;
  NodePtr root_;
  uint64_t next_inode_ = 2;  // the root is 1
  uint64_t generation_ = 0;  // Crash() counts up
  uint64_t temp_names_ = 0;  // temporary names made, for the next one
  std::vector<Fault> faults_;
  uint64_t faults_fired_ = 0;
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_MEM_FILE_SYSTEM_H_
