// DiskRootDir: a RootDir over a folder on the real disk.
//
// The folder is opened once as a directory file descriptor and every operation is
// relative to it. A path is walked one component at a time with
// openat(O_DIRECTORY | O_NOFOLLOW), and the last component is handled by *at() calls
// that never follow a symbolic link, so nothing is ever read or written outside the
// folder, even when a directory in it is swapped for a symbolic link at any moment.
// Durability is fsync of the file and of its directory; SyncAll is syncfs(2).
#ifndef FERRY_CONNECTORS_FILES_DISK_ROOT_DIR_H_
#define FERRY_CONNECTORS_FILES_DISK_ROOT_DIR_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "src/connectors/files/root_dir.h"

namespace ferry::files {

class DiskRootDir final : public RootDir {
 public:
  // As RootDir::Open.
  static absl::StatusOr<std::unique_ptr<DiskRootDir>> Open(const std::string& path);
  ~DiskRootDir() override;

  // Opens the regular file `rel` with O_RDONLY | O_NOFOLLOW | O_CLOEXEC (blocking);
  // the caller closes the descriptor. Errors as OpenForRead.
  absl::StatusOr<int> OpenFd(std::string_view rel) const;

  const std::string& path() const override { return path_; }
  absl::StatusOr<std::optional<FileStat>> Stat(std::string_view rel) const override;
  absl::Status Walk(
      const std::function<void(const std::string& rel, const FileStat& stat)>& visit,
      const std::function<void(const std::string& rel, const std::string& why)>& skipped,
      size_t entries_max) const override;
  absl::StatusOr<std::unique_ptr<FileReader>> OpenForRead(
      std::string_view rel) const override;
  absl::StatusOr<std::string> ReadLink(std::string_view rel) const override;
  absl::Status ReplaceFile(std::string_view rel, const WriteFn& write, uint32_t mode,
                           int64_t mtime_ns, const Expect& expect) const override;
  absl::Status Remove(std::string_view rel, const Expect& expect) const override;
  absl::Status Rename(std::string_view from, std::string_view to,
                      const Expect& from_expect, const Expect& to_expect) const override;
  absl::StatusOr<std::unique_ptr<PendingFile>> WriteTemp(
      std::string_view rel, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
      const Expect& expect) const override;
  absl::StatusOr<std::optional<FileStat>> CommitTemp(PendingFile& pending,
                                                     const Expect& expect) const override;
  absl::Status SyncAll() const override;

 private:
  DiskRootDir(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status MakeDirImpl(std::string_view rel, uint32_t mode, bool sync) const override;
  absl::Status ReplaceSymlinkImpl(std::string_view rel, std::string_view target,
                                  const Expect& expect, bool sync) const override;

  const std::string path_;
  const int fd_;  // owned; O_RDONLY | O_DIRECTORY
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_DISK_ROOT_DIR_H_
