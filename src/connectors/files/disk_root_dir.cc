#include "src/connectors/files/disk_root_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "src/connectors/files/path_rules.h"
#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::files {
namespace {

constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
constexpr int kTempNameAttempts = 8;
// Bytes one write(2) call is given. Larger calls make the page cache allocate large
// folios, which on the benchmark machine (a VM that hands free 2 MiB blocks back to its
// host) come from memory the host must fault in again: the benchmark's tree written in
// 16 MiB calls took 1.3 s of system time, in 256 KiB calls 0.22 s (docs/performance.md).
// The extra calls cost little anywhere: one per 256 KiB.
constexpr size_t kWriteCallBytesMax = 256u << 10;
constexpr int64_t kNanosPerSecond = 1'000'000'000;

// An owned file descriptor, closed when destroyed.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.Release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  ~Fd() { Reset(-1); }

  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  // close(2) with its error, for files whose last write errors must not be lost.
  absl::Status Close(std::string_view rel) {
    assert(fd_ >= 0);
    if (::close(Release()) != 0) return ErrnoStatus(errno, "close", rel);
    return absl::OkStatus();
  }

 private:
  int fd_ = -1;
};

// A temporary entry in a directory, unlinked when destroyed unless Keep() was called.
class TempEntry {
 public:
  TempEntry(int dirfd, std::string name) : dirfd_(dirfd), name_(std::move(name)) {}
  TempEntry(TempEntry&& other) noexcept
      : dirfd_(other.dirfd_), name_(std::exchange(other.name_, {})) {}
  TempEntry& operator=(TempEntry&&) = delete;
  ~TempEntry() {
    if (!name_.empty()) ::unlinkat(dirfd_, name_.c_str(), 0);
  }

  const std::string& name() const { return name_; }
  void Keep() { name_.clear(); }

 private:
  int dirfd_;
  std::string name_;
};

// The directory holding the last component of a relative path, opened.
struct Parent {
  Fd owned;  // not valid when the directory is the root itself
  int fd = -1;
  std::string_view dir;  // relative path of the directory; empty for the root
  std::string leaf;      // the last component
};

// Nanoseconds since the epoch, saturated beyond the int64 range (about 1677-2262).
int64_t ToNanos(const struct timespec& ts) {
  int64_t out;
  if (__builtin_mul_overflow(static_cast<int64_t>(ts.tv_sec), kNanosPerSecond, &out) ||
      __builtin_add_overflow(out, static_cast<int64_t>(ts.tv_nsec), &out)) {
    return ts.tv_sec < 0 ? std::numeric_limits<int64_t>::min()
                         : std::numeric_limits<int64_t>::max();
  }
  return out;
}

FileStat ToFileStat(const struct stat& st) {
  FileStat out;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      out.type = FileStat::kFile;
      break;
    case S_IFDIR:
      out.type = FileStat::kDir;
      break;
    case S_IFLNK:
      out.type = FileStat::kSymlink;
      break;
    default:
      out.type = FileStat::kOther;
  }
  out.size = static_cast<uint64_t>(st.st_size);
  out.mtime_ns = ToNanos(st.st_mtim);
  out.inode = static_cast<uint64_t>(st.st_ino);
  out.mode = static_cast<uint32_t>(st.st_mode & 07777);
  out.ctime_ns = ToNanos(st.st_ctim);
  return out;
}

struct timespec ToTimespec(int64_t ns) {
  int64_t seconds = ns / kNanosPerSecond;
  int64_t rest = ns % kNanosPerSecond;
  if (rest < 0) {
    rest += kNanosPerSecond;
    --seconds;
  }
  struct timespec out = {};
  out.tv_sec = static_cast<time_t>(seconds);
  out.tv_nsec = static_cast<long>(rest);
  return out;
}

// An error of `op` on `rel`; what the folder's contents refuse is FAILED_PRECONDITION.
absl::Status FsError(int error, std::string_view op, std::string_view rel) {
  std::string_view why;
  switch (error) {
    case ELOOP:
      why = "a symbolic link is in the way (not followed)";
      break;
    case ENOTDIR:
      why = "not a directory";
      break;
    case EISDIR:
      why = "is a directory";
      break;
    case ENOTEMPTY:
      why = "directory not empty";
      break;
    default:
      return ErrnoStatus(error, op, rel);
  }
  return absl::FailedPreconditionError(StrCat(op, " ", rel, ": ", why));
}

// The error for directory `name` in `dirfd` that openat refused with `error`.
absl::Status OpenDirError(int error, int dirfd, const std::string& name,
                          std::string_view shown, std::string_view rel) {
  if (error != ELOOP && error != ENOTDIR) return FsError(error, "open directory", shown);
  // Linux says ENOTDIR for a symbolic link opened with O_DIRECTORY | O_NOFOLLOW.
  struct stat st;
  const bool link = ::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISLNK(st.st_mode);
  return absl::FailedPreconditionError(
      StrCat(rel, ": ", shown,
             link ? " is a symbolic link; not followed" : " is not a directory"));
}

// Opens directory `name` in `dirfd` without following a symbolic link; creates it
// (0755) first when missing and `create`, then fsyncs `dirfd` when `sync`. `shown` is
// its relative path, on the way to `rel`; both name it in errors.
absl::StatusOr<Fd> OpenChildDir(int dirfd, const std::string& name, bool create,
                                bool sync, std::string_view shown, std::string_view rel) {
  Fd fd(::openat(dirfd, name.c_str(), kDirFlags));
  if (fd.get() < 0 && errno == ENOENT && create) {
    if (::mkdirat(dirfd, name.c_str(), 0755) != 0 && errno != EEXIST) {
      return FsError(errno, "create directory", shown);
    }
    if (sync && ::fsync(dirfd) != 0) {
      return ErrnoStatus(errno, "fsync directory of", shown);
    }
    fd.Reset(::openat(dirfd, name.c_str(), kDirFlags));
  }
  if (fd.get() < 0) return OpenDirError(errno, dirfd, name, shown, rel);
  return fd;
}

// Opens directory `rel` below `root_fd` in one call when the kernel has openat2: no
// component may be a symbolic link and the path may not leave the root. An invalid Fd
// for any failure, which the caller answers by walking the path itself.
Fd OpenBeneath(int root_fd, const std::string& rel) {
#ifdef SYS_openat2
  static std::atomic<bool> unavailable{false};
  if (unavailable.load(std::memory_order_relaxed)) return Fd();
  struct open_how how = {};
  how.flags = kDirFlags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof(how));
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    unavailable.store(true, std::memory_order_relaxed);
  }
  return Fd(static_cast<int>(fd));
#else
  (void)root_fd;
  (void)rel;
  return Fd();
#endif
}

// Opens the directory that holds the last component of the valid path `rel`: with
// OpenBeneath, or else walking from `root_fd` one component at a time; missing
// directories are created if `create`, each made durable at once unless `sync` is false
// (the caller then calls syncfs before relying on them). NOT_FOUND when one is missing,
// FAILED_PRECONDITION when one is not a directory (or is a symbolic link).
absl::StatusOr<Parent> OpenParent(int root_fd, std::string_view rel, bool create,
                                  bool sync = true) {
  Parent parent;
  parent.fd = root_fd;
  const size_t last_slash = rel.rfind('/');
  if (last_slash != std::string_view::npos) {
    // One openat2 that refuses every symbolic link and anything outside the root does
    // what the walk below does for a directory that exists, in one call instead of one
    // per component. The walk stays for the rest: creating, the precise error, and a
    // kernel (or a seccomp filter) without openat2.
    Fd fd = OpenBeneath(root_fd, std::string(rel.substr(0, last_slash)));
    if (fd.get() >= 0) {
      parent.owned = std::move(fd);
      parent.fd = parent.owned.get();
      parent.dir = rel.substr(0, last_slash);
      parent.leaf = std::string(rel.substr(last_slash + 1));
      assert(!parent.leaf.empty());
      return parent;
    }
  }
  size_t start = 0;
  for (size_t slash = rel.find('/'); slash != std::string_view::npos;
       slash = rel.find('/', start)) {
    std::string name(rel.substr(start, slash - start));
    FERRY_ASSIGN_OR_RETURN(
        Fd next, OpenChildDir(parent.fd, name, create, sync, rel.substr(0, slash), rel));
    parent.owned = std::move(next);
    parent.fd = parent.owned.get();
    start = slash + 1;
  }
  parent.dir = rel.substr(0, start == 0 ? 0 : start - 1);
  parent.leaf = std::string(rel.substr(start));
  assert(!parent.leaf.empty());
  return parent;
}

// A missing parent, or one that is not a directory: the path names nothing.
bool IsAbsentParent(const absl::Status& status) {
  return absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

absl::StatusOr<std::optional<FileStat>> StatAt(int dirfd, const std::string& name,
                                               std::string_view rel) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::nullopt;
    return ErrnoStatus(errno, "stat", rel);
  }
  return ToFileStat(st);
}

absl::Status SyncDirFd(int fd, std::string_view dir) {
  if (::fsync(fd) != 0) {
    return ErrnoStatus(errno, "fsync directory", dir.empty() ? "." : dir);
  }
  return absl::OkStatus();
}

// Checks that the target of a replacement is not a directory and that `expect` holds.
absl::Status CheckTarget(const Parent& parent, std::string_view rel,
                         const RootDir::Expect& expect) {
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> current,
                         StatAt(parent.fd, parent.leaf, rel));
  if (current.has_value() && current->type == FileStat::kDir) {
    return absl::FailedPreconditionError(StrCat("replace ", rel, ": is a directory"));
  }
  return CheckExpect(expect, current, rel);
}

std::string RandomTempName() {
  static std::atomic<uint64_t> counter{0};
  uint64_t bits = 0;
  if (::getrandom(&bits, sizeof(bits), 0) != static_cast<ssize_t>(sizeof(bits))) {
    bits = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    bits ^= static_cast<uint64_t>(::getpid()) << 32;
  }
  bits ^= counter.fetch_add(1) * 0x9E3779B97F4A7C15u;
  return TempName(bits);
}

// Creates a temporary entry in `dirfd` with `create(name)` (0, or -1 and errno), trying
// fresh names while one already exists.
absl::StatusOr<TempEntry> CreateTemp(int dirfd, std::string_view rel,
                                     const std::function<int(const char*)>& create) {
  for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
    std::string name = RandomTempName();
    if (create(name.c_str()) == 0) return TempEntry(dirfd, std::move(name));
    if (errno != EEXIST) return FsError(errno, "create temporary file for", rel);
  }
  return absl::InternalError(StrCat("no free temporary file name for ", rel));
}

// Renames `from` in `from_dir` to `to` in `to_dir`; when `no_replace`, an existing `to`
// is left alone and the result is ABORTED.
absl::Status RenameAt(int from_dir, const std::string& from, int to_dir,
                      const std::string& to, bool no_replace, std::string_view rel) {
  if (no_replace) {
    if (::renameat2(from_dir, from.c_str(), to_dir, to.c_str(), RENAME_NOREPLACE) == 0) {
      return absl::OkStatus();
    }
    if (errno == EEXIST) {
      return absl::AbortedError(StrCat(rel, " changed since scan: it exists"));
    }
    if (errno != EINVAL) return FsError(errno, "rename to", rel);
    // The file system lacks RENAME_NOREPLACE: the caller checked just before.
  }
  if (::renameat(from_dir, from.c_str(), to_dir, to.c_str()) != 0) {
    return FsError(errno, "rename to", rel);
  }
  return absl::OkStatus();
}

// Renames `temp` over the target of `parent` once `expect` holds, and syncs.
absl::Status Commit(const Parent& parent, TempEntry& temp, std::string_view rel,
                    const RootDir::Expect& expect, bool sync = true) {
  FERRY_RETURN_IF_ERROR(CheckTarget(parent, rel, expect));
  FERRY_RETURN_IF_ERROR(RenameAt(parent.fd, temp.name(), parent.fd, parent.leaf,
                                 expect.must_be_absent, rel));
  temp.Keep();
  return sync ? SyncDirFd(parent.fd, parent.dir) : absl::OkStatus();
}

// Appends to an open temporary file.
class DiskWriter final : public FileWriter {
 public:
  DiskWriter(int fd, std::string_view rel) : fd_(fd), rel_(rel) {}
  absl::Status Append(std::string_view data) override {
    iovec one{const_cast<char*>(data.data()), data.size()};
    return WriteAll(std::span<iovec>(&one, data.empty() ? 0 : 1));
  }
  absl::Status AppendAll(const std::vector<std::string>& pieces) override {
    std::vector<iovec> iov;
    iov.reserve(pieces.size());
    for (const std::string& piece : pieces) {
      if (!piece.empty()) iov.push_back({const_cast<char*>(piece.data()), piece.size()});
    }
    return WriteAll(iov);
  }

 private:
  // Writes every byte `iov` points to (no entry empty), at most IOV_MAX entries and
  // kWriteCallBytesMax bytes a call; `iov` is changed as it is written.
  absl::Status WriteAll(std::span<iovec> iov) {
    while (!iov.empty()) {
      // Entries up to kWriteCallBytesMax, the last one cut for this call where it goes
      // past: every call but the last (or one cut short by IOV_MAX) writes exactly that.
      size_t count = 0, bytes = 0;
      while (count < iov.size() && count < IOV_MAX && bytes < kWriteCallBytesMax) {
        bytes += iov[count++].iov_len;
      }
      const size_t over = bytes > kWriteCallBytesMax ? bytes - kWriteCallBytesMax : 0;
      iov[count - 1].iov_len -= over;
      ssize_t n = ::writev(fd_, iov.data(), static_cast<int>(count));
      iov[count - 1].iov_len += over;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoStatus(n < 0 ? errno : EIO, "write", rel_);
      // Drops what was written: whole entries, then the front of a partial one.
      size_t done = static_cast<size_t>(n);
      while (!iov.empty() && done >= iov.front().iov_len) {
        done -= iov.front().iov_len;
        iov = iov.subspan(1);
      }
      if (done > 0) {
        assert(!iov.empty());
        iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + done;
        iov.front().iov_len -= done;
      }
    }
    return absl::OkStatus();
  }

  const int fd_;
  const std::string_view rel_;
};

// Reads an open regular file; owns the descriptor.
class DiskReader final : public FileReader {
 public:
  DiskReader(Fd fd, std::string_view rel) : fd_(std::move(fd)), rel_(rel) {}
  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    return ReadLoop(out, size, [&](size_t done) {
      return ::read(fd_.get(), out + done, size - done);
    });
  }
  absl::StatusOr<size_t> ReadAt(uint64_t offset, char* out, size_t size) override {
    return ReadLoop(out, size, [&](size_t done) {
      return ::pread(fd_.get(), out + done, size - done,
                     static_cast<off_t>(offset + done));
    });
  }

 private:
  template <typename ReadOnce>
  absl::StatusOr<size_t> ReadLoop(char* out, size_t size, const ReadOnce& read_once) {
    assert(out != nullptr || size == 0);
    size_t done = 0;
    while (done < size) {
      ssize_t n = read_once(done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "read", rel_);
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Fd fd_;
  const std::string rel_;
};

// Writes, stamps and (when `sync`) syncs the new contents of `rel` in the open
// temporary file.
absl::Status FillTemp(Fd fd, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
                      std::string_view rel, bool sync = true) {
  DiskWriter writer(fd.get(), rel);
  FERRY_RETURN_IF_ERROR(write(writer));
  if (::fchmod(fd.get(), mode & 0777) != 0) return ErrnoStatus(errno, "chmod", rel);
  const struct timespec times[2] = {{0, UTIME_OMIT}, ToTimespec(mtime_ns)};
  if (::futimens(fd.get(), times) != 0) {
    return ErrnoStatus(errno, "set modification time of", rel);
  }
  if (sync && ::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", rel);
  return fd.Close(rel);
}

// The walk runs in two passes. First several threads read the directories, one task
// per directory, and lstat every entry: on a tree in the page cache that is nearly all
// of the walk's time, and it is system calls that run well side by side. Then the
// calling thread replays what was read, calling the callbacks in walk order exactly as
// a plain recursive walk would, errors included: the first error in walk order ends
// the walk, after the callbacks for everything before it.
struct Listing;

struct WalkedEntry {
  enum Kind : uint8_t {
    kVisit,     // visit(stat); then `error`, `why` or `child`, if any
    kSkip,      // skipped(why): an invalid path
    kVanished,  // gone between readdir and lstat: left out
    kError,     // lstat failed: the walk ends here with `error`
  };
  std::string rel;  // the path from the root
  Kind kind = kVisit;
  FileStat stat;
  std::string why;     // kSkip; kVisit: a directory not entered (skipped after visit)
  absl::Status error;  // kError; kVisit: a directory that could not be opened
  std::unique_ptr<Listing> child;  // kVisit of a directory entered
};

struct Listing {
  absl::Status status;  // reading the directory failed (or the walk was cut short)
  std::vector<WalkedEntry> entries;
};

class Walker {
 public:
  using Visit = std::function<void(const std::string&, const FileStat&)>;
  using Skipped = std::function<void(const std::string&, const std::string&)>;

  Walker(const Visit& visit, const Skipped& skipped, size_t entries_max)
      : visit_(visit), skipped_(skipped), entries_max_(entries_max) {}

  absl::Status Walk(int root_fd);

 private:
  // Directories queued beyond this many are read by the thread that found them, so
  // that the open descriptors stay bounded (queued + one per level per thread).
  static constexpr size_t kQueuedDirsMax = 64;
  static constexpr unsigned kThreadsMax = 3;
  // Helper threads start once this many directories were queued.
  static constexpr size_t kDirsBeforeHelpers = 16;

  struct Task {
    Fd fd;  // the directory, opened by the walk; read through this descriptor
    std::string rel;
    Listing* out;
  };

  void Work();
  void Submit(Task task);
  void Read(Task task);
  absl::StatusOr<std::vector<std::string>> ReadNames(DIR* dir,
                                                     const std::string& dir_rel);
  absl::Status EntriesExhausted() const {
    return absl::ResourceExhaustedError(
        StrCat("walk: more than ", entries_max_, " entries"));
  }
  absl::Status Replay(Listing& listing);

  const Visit& visit_;
  const Skipped& skipped_;
  const size_t entries_max_;
  std::atomic<size_t> entries_{0};
  std::atomic<bool> stop_{false};  // the entry bound was passed: readers stop

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Task> queue_;  // guarded by mu_
  size_t pending_ = 0;       // guarded by mu_: queued or being read
  size_t queued_ = 0;        // guarded by mu_: directories queued so far
  const unsigned threads_ =
      std::clamp(std::thread::hardware_concurrency(), 1u, kThreadsMax);
  std::vector<std::thread> helpers_;  // guarded by mu_ until the walk is read
};

absl::Status Walker::Walk(int root_fd) {
  Listing root;
  Fd fd(::openat(root_fd, ".", kDirFlags));
  if (fd.get() < 0) return FsError(errno, "open directory", ".");
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Task{std::move(fd), "", &root});
    pending_ = 1;
  }
  Work();
  // No read is running (pending_ is 0), so no helper is being added.
  for (std::thread& t : helpers_) t.join();
  return Replay(root);
}

void Walker::Work() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !queue_.empty() || pending_ == 0; });
      if (queue_.empty()) return;       // pending_ == 0: the walk is read
      task = std::move(queue_.back());  // newest first: depth first, fewer open
      queue_.pop_back();
    }
    Read(std::move(task));
    std::lock_guard lock(mu_);
    if (--pending_ == 0) cv_.notify_all();
  }
}

void Walker::Submit(Task task) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < kQueuedDirsMax) {
      queue_.push_back(std::move(task));
      ++pending_;
      // Small trees are read by one thread: a helper costs more than it saves there.
      if (++queued_ >= kDirsBeforeHelpers && helpers_.size() + 1 < threads_) {
        helpers_.emplace_back([this] { Work(); });
      }
      cv_.notify_one();
      return;
    }
  }
  Read(std::move(task));
}

absl::StatusOr<std::vector<std::string>> Walker::ReadNames(DIR* dir,
                                                           const std::string& dir_rel) {
  const std::string_view shown = dir_rel.empty() ? std::string_view(".") : dir_rel;
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) break;
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (entries_.fetch_add(1, std::memory_order_relaxed) + 1 > entries_max_) {
      stop_.store(true, std::memory_order_relaxed);
      return EntriesExhausted();
    }
    names.emplace_back(name);
  }
  if (errno != 0) return ErrnoStatus(errno, "read directory", shown);
  std::sort(names.begin(), names.end());
  return names;
}

// Reads one directory into task.out. Where a recursive walk would return an error,
// the listing ends with that entry.
void Walker::Read(Task task) {
  Listing& out = *task.out;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(task.fd.get()), &::closedir);
  if (dir == nullptr) {
    out.status = ErrnoStatus(errno, "read directory", task.rel.empty() ? "." : task.rel);
    return;
  }
  const int dir_fd = task.fd.Release();  // owned by `dir` now
  absl::StatusOr<std::vector<std::string>> names = ReadNames(dir.get(), task.rel);
  if (!names.ok()) {
    out.status = names.status();
    return;
  }
  out.entries.reserve(names->size());
  for (std::string& name : *names) {
    if (stop_.load(std::memory_order_relaxed)) {
      out.status = EntriesExhausted();
      return;
    }
    std::string rel = task.rel.empty() ? name : StrCat(task.rel, "/", name);
    WalkedEntry& e = out.entries.emplace_back();
    e.rel = rel;
    if (absl::Status valid = ValidateRelativePath(rel); !valid.ok()) {
      e.kind = WalkedEntry::kSkip;
      e.why = std::string(valid.message().data(), valid.message().size());
      continue;
    }
    absl::StatusOr<std::optional<FileStat>> stat = StatAt(dir_fd, name, rel);
    if (!stat.ok()) {
      e.kind = WalkedEntry::kError;
      e.error = stat.status();
      return;
    }
    if (!stat->has_value()) {
      e.kind = WalkedEntry::kVanished;
      continue;
    }
    e.stat = **stat;
    if (e.stat.type != FileStat::kDir) continue;
    Fd child(::openat(dir_fd, name.c_str(), kDirFlags));
    struct stat st = {};
    if (child.get() < 0) {
      if (errno == ENOENT) continue;  // visited, gone before it could be entered
      if (errno != ELOOP && errno != ENOTDIR) {
        e.error = FsError(errno, "open directory", rel);
        return;
      }
    } else if (::fstat(child.get(), &st) != 0) {
      e.error = ErrnoStatus(errno, "stat", rel);
      return;
    }
    if (child.get() < 0 || static_cast<uint64_t>(st.st_ino) != e.stat.inode) {
      e.why = "replaced during the walk; not entered";
      continue;
    }
    e.child = std::make_unique<Listing>();
    Submit(Task{std::move(child), std::move(rel), e.child.get()});
  }
}

absl::Status Walker::Replay(Listing& listing) {
  FERRY_RETURN_IF_ERROR(listing.status);
  for (WalkedEntry& e : listing.entries) {
    const std::string& rel = e.rel;
    switch (e.kind) {
      case WalkedEntry::kSkip:
        if (skipped_) skipped_(rel, e.why);
        continue;
      case WalkedEntry::kVanished:
        continue;
      case WalkedEntry::kError:
        return e.error;
      case WalkedEntry::kVisit:
        break;
    }
    visit_(rel, e.stat);
    FERRY_RETURN_IF_ERROR(e.error);
    if (!e.why.empty() && skipped_) skipped_(rel, e.why);
    if (e.child != nullptr) {
      FERRY_RETURN_IF_ERROR(Replay(*e.child));
      e.child.reset();  // what was replayed is no longer needed
    }
  }
  return absl::OkStatus();
}

// A temporary file written by WriteTemp, not yet committed.
class DiskPendingFile final : public RootDir::PendingFile {
 public:
  DiskPendingFile(const RootDir* owner, std::string rel)
      : PendingFile(owner, std::move(rel)) {}
  ~DiskPendingFile() override {
    if (!temp.empty()) ::unlinkat(dir_fd, temp.c_str(), 0);
    if (owns_dir_fd) ::close(dir_fd);
  }

  int dir_fd = -1;  // the target's directory; owned unless it is the root
  bool owns_dir_fd = false;
  std::string leaf, temp;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DiskRootDir>> DiskRootDir::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR) {
      return absl::FailedPreconditionError(StrCat(path, " is not a directory"));
    }
    return ErrnoStatus(errno, "open folder", path);
  }
  return std::unique_ptr<DiskRootDir>(new DiskRootDir(path, fd));
}

DiskRootDir::~DiskRootDir() { ::close(fd_); }

absl::StatusOr<std::optional<FileStat>> DiskRootDir::Stat(std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  absl::StatusOr<Parent> parent = OpenParent(fd_, rel, /*create=*/false);
  if (!parent.ok()) {
    if (IsAbsentParent(parent.status())) return std::nullopt;
    return parent.status();
  }
  return StatAt(parent->fd, parent->leaf, rel);
}

absl::Status DiskRootDir::Walk(
    const std::function<void(const std::string& rel, const FileStat& stat)>& visit,
    const std::function<void(const std::string& rel, const std::string& why)>& skipped,
    size_t entries_max) const {
  assert(visit);
  Walker walker(visit, skipped, entries_max);
  return walker.Walk(fd_);
}

absl::StatusOr<int> DiskRootDir::OpenFd(std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_ASSIGN_OR_RETURN(Parent parent, OpenParent(fd_, rel, /*create=*/false));
  // O_NONBLOCK so that a FIFO is refused below rather than waited on.
  Fd fd(::openat(parent.fd, parent.leaf.c_str(),
                 O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) return FsError(errno, "open", rel);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "stat", rel);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(StrCat("open ", rel, ": not a regular file"));
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoStatus(errno, "fcntl", rel);
  }
  return fd.Release();
}

absl::StatusOr<std::unique_ptr<FileReader>> DiskRootDir::OpenForRead(
    std::string_view rel) const {
  FERRY_ASSIGN_OR_RETURN(int fd, OpenFd(rel));
  return std::make_unique<DiskReader>(Fd(fd), rel);
}

absl::StatusOr<std::string> DiskRootDir::ReadLink(std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_ASSIGN_OR_RETURN(Parent parent, OpenParent(fd_, rel, /*create=*/false));
  std::string target(kSymlinkTargetBytesMax + 1, '\0');
  ssize_t n = ::readlinkat(parent.fd, parent.leaf.c_str(), target.data(), target.size());
  if (n < 0) {
    if (errno == EINVAL) {
      return absl::FailedPreconditionError(
          StrCat("read link ", rel, ": not a symbolic link"));
    }
    return FsError(errno, "read link", rel);
  }
  if (static_cast<size_t>(n) > kSymlinkTargetBytesMax) {
    return absl::FailedPreconditionError(StrCat(
        "read link ", rel, ": target longer than ", kSymlinkTargetBytesMax, " bytes"));
  }
  target.resize(static_cast<size_t>(n));
  return target;
}

// The first half of ReplaceFile and WriteTemp: checks, then the new contents in a
// temporary file beside the target (fsynced when `sync`).
static absl::Status WriteTempEntry(int root_fd, std::string_view rel,
                                   const WriteFn& write, uint32_t mode, int64_t mtime_ns,
                                   const RootDir::Expect& expect, bool sync,
                                   Parent* parent, std::optional<TempEntry>* temp) {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  FERRY_RETURN_IF_ERROR(ValidateMode(mode));
  FERRY_ASSIGN_OR_RETURN(*parent, OpenParent(root_fd, rel, /*create=*/true, sync));
  FERRY_RETURN_IF_ERROR(CheckTarget(*parent, rel, expect));  // before writing anything
  Fd fd;
  const int dir = parent->fd;
  FERRY_ASSIGN_OR_RETURN(
      TempEntry entry, CreateTemp(dir, rel, [&](const char* name) {
        fd.Reset(::openat(dir, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                          0600));
        return fd.get() < 0 ? -1 : 0;
      }));
  temp->emplace(std::move(entry));
  return FillTemp(std::move(fd), write, mode, mtime_ns, rel, sync);
}

absl::Status DiskRootDir::ReplaceFile(std::string_view rel, const WriteFn& write,
                                      uint32_t mode, int64_t mtime_ns,
                                      const Expect& expect) const {
  Parent parent;
  std::optional<TempEntry> temp;
  FERRY_RETURN_IF_ERROR(WriteTempEntry(fd_, rel, write, mode, mtime_ns, expect,
                                       /*sync=*/true, &parent, &temp));
  return Commit(parent, *temp, rel, expect);
}

absl::StatusOr<std::unique_ptr<RootDir::PendingFile>> DiskRootDir::WriteTemp(
    std::string_view rel, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
    const Expect& expect) const {
  Parent parent;
  std::optional<TempEntry> temp;
  FERRY_RETURN_IF_ERROR(WriteTempEntry(fd_, rel, write, mode, mtime_ns, expect,
                                       /*sync=*/false, &parent, &temp));
  auto pending = std::make_unique<DiskPendingFile>(this, std::string(rel));
  pending->leaf = parent.leaf;
  pending->temp = temp->name();
  temp->Keep();
  pending->owns_dir_fd = parent.owned.get() >= 0;
  pending->dir_fd = pending->owns_dir_fd ? parent.owned.Release() : parent.fd;
  return std::unique_ptr<PendingFile>(std::move(pending));
}

absl::StatusOr<std::optional<FileStat>> DiskRootDir::CommitTemp(
    PendingFile& base, const Expect& expect) const {
  assert(base.owner() == this);
  auto& pending = static_cast<DiskPendingFile&>(base);
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  assert(!pending.temp.empty());  // not committed twice
  Parent parent;
  parent.fd = pending.dir_fd;
  parent.leaf = pending.leaf;
  FERRY_RETURN_IF_ERROR(CheckTarget(parent, pending.rel(), expect));
  FERRY_RETURN_IF_ERROR(RenameAt(pending.dir_fd, pending.temp, pending.dir_fd,
                                 pending.leaf, expect.must_be_absent, pending.rel()));
  pending.temp.clear();
  return StatAt(pending.dir_fd, pending.leaf, pending.rel());
}

absl::Status DiskRootDir::SyncAll() const {
  if (::syncfs(fd_) != 0) return ErrnoStatus(errno, "syncfs", path_);
  return absl::OkStatus();
}

absl::Status DiskRootDir::ReplaceSymlinkImpl(std::string_view rel,
                                             std::string_view target,
                                             const Expect& expect, bool sync) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  FERRY_RETURN_IF_ERROR(ValidateSymlinkTarget(rel, target));
  FERRY_ASSIGN_OR_RETURN(Parent parent, OpenParent(fd_, rel, /*create=*/true, sync));
  FERRY_RETURN_IF_ERROR(CheckTarget(parent, rel, expect));
  const std::string target_str(target);
  FERRY_ASSIGN_OR_RETURN(TempEntry temp,
                         CreateTemp(parent.fd, rel, [&](const char* name) {
                           return ::symlinkat(target_str.c_str(), parent.fd, name);
                         }));
  return Commit(parent, temp, rel, expect, sync);
}

absl::Status DiskRootDir::MakeDirImpl(std::string_view rel, uint32_t mode,
                                      bool sync) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateMode(mode));
  FERRY_ASSIGN_OR_RETURN(Parent parent, OpenParent(fd_, rel, /*create=*/true, sync));
  if (::mkdirat(parent.fd, parent.leaf.c_str(), 0700) != 0 && errno != EEXIST) {
    return FsError(errno, "create directory", rel);
  }
  Fd dir(::openat(parent.fd, parent.leaf.c_str(), kDirFlags));
  if (dir.get() < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return absl::FailedPreconditionError(
          StrCat("create directory ", rel, ": exists and is not a directory"));
    }
    return FsError(errno, "open directory", rel);
  }
  if (::fchmod(dir.get(), mode & 0777) != 0) return ErrnoStatus(errno, "chmod", rel);
  return sync ? SyncDirFd(parent.fd, parent.dir) : absl::OkStatus();
}

absl::Status DiskRootDir::Remove(std::string_view rel, const Expect& expect) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  absl::StatusOr<Parent> parent = OpenParent(fd_, rel, /*create=*/false);
  if (!parent.ok()) {
    return IsAbsentParent(parent.status()) ? absl::OkStatus() : parent.status();
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> current,
                         StatAt(parent->fd, parent->leaf, rel));
  if (!current.has_value()) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(CheckExpect(expect, current, rel));
  const bool is_dir = current->type == FileStat::kDir;
  if (::unlinkat(parent->fd, parent->leaf.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    if (errno == ENOTEMPTY || errno == EEXIST) {
      return absl::FailedPreconditionError(
          StrCat("remove ", rel, ": directory not empty"));
    }
    return FsError(errno, "remove", rel);
  }
  return SyncDirFd(parent->fd, parent->dir);
}

absl::Status DiskRootDir::Rename(std::string_view from, std::string_view to,
                                 const Expect& from_expect,
                                 const Expect& to_expect) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(from));
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(to));
  FERRY_RETURN_IF_ERROR(ValidateExpect(from_expect));
  FERRY_RETURN_IF_ERROR(ValidateExpect(to_expect));
  FERRY_RETURN_IF_ERROR(CheckNotIntoItself(from, to));
  absl::StatusOr<Parent> source = OpenParent(fd_, from, /*create=*/false);
  if (!source.ok()) {
    if (!IsAbsentParent(source.status())) return source.status();
    return absl::NotFoundError(StrCat("rename ", from, ": does not exist"));
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> from_stat,
                         StatAt(source->fd, source->leaf, from));
  if (!from_stat.has_value()) {
    return absl::NotFoundError(StrCat("rename ", from, ": does not exist"));
  }
  FERRY_RETURN_IF_ERROR(CheckExpect(from_expect, from_stat, from));
  FERRY_ASSIGN_OR_RETURN(Parent dest, OpenParent(fd_, to, /*create=*/true));
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> to_stat, StatAt(dest.fd, dest.leaf, to));
  FERRY_RETURN_IF_ERROR(CheckExpect(to_expect, to_stat, to));
  FERRY_RETURN_IF_ERROR(RenameAt(source->fd, source->leaf, dest.fd, dest.leaf,
                                 to_expect.must_be_absent, to));
  FERRY_RETURN_IF_ERROR(SyncDirFd(dest.fd, dest.dir));
  if (source->dir == dest.dir) return absl::OkStatus();
  return SyncDirFd(source->fd, source->dir);
}

}  // namespace ferry::files
