#include "src/connectors/files/mem_file_system.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <deque>
#include <map>
#include <set>
#include <utility>

#include "src/connectors/files/path_rules.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::files {

// Symbolic links followed by OpenRoot before it gives up (Linux's MAXSYMLINKS).
constexpr int kSymlinkHopsMax = 40;
// Names tried for a temporary file before giving up.
constexpr int kTempNameAttempts = 8;

struct MemFileSystem::Node {
  FileStat::Type type = FileStat::kOther;
  uint64_t inode = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  // Contents of a file, target of a link. Shared with `durable_data` until changed.
  std::shared_ptr<std::string> data = std::make_shared<std::string>();
  std::map<std::string, NodePtr> entries;  // a directory's
  bool detached = false;                   // a removed directory: nothing is made in it

  // What a crash leaves: see the model in the header.
  std::shared_ptr<const std::string> durable_data;  // nullptr: never synced (empty)
  uint32_t durable_mode = 0;
  int64_t durable_mtime_ns = 0;
  std::map<std::string, NodePtr> durable_entries;

  FileStat Stat() const {
    FileStat out;
    out.type = type;
    out.size = type == FileStat::kDir ? entries.size() : data->size();
    out.mtime_ns = mtime_ns;
    out.inode = inode;
    out.mode = mode;
    out.ctime_ns = ctime_ns;
    return out;
  }
  // The contents, to change: copied first while the durable state shares them.
  std::string& MutableData() {
    if (data.use_count() > 1) data = std::make_shared<std::string>(*data);
    return *data;
  }
  NodePtr Find(std::string_view name) const {
    auto it = entries.find(std::string(name));
    return it == entries.end() ? nullptr : it->second;
  }
};

namespace {

// "/a/b" of `root` and `rel`.
std::string Join(std::string_view root, std::string_view rel) {
  if (rel.empty()) return std::string(root);
  if (root.empty() || root.back() == '/') return StrCat(root, rel);
  return StrCat(root, "/", rel);
}

std::string_view OpName(FsOp op) {
  switch (op) {
    case FsOp::kAny:
      return "any";
    case FsOp::kStat:
      return "stat";
    case FsOp::kWalk:
      return "read directory";
    case FsOp::kOpen:
      return "open";
    case FsOp::kRead:
      return "read";
    case FsOp::kReadLink:
      return "read link";
    case FsOp::kCreate:
      return "create";
    case FsOp::kWrite:
      return "write";
    case FsOp::kSync:
      return "fsync";
    case FsOp::kRename:
      return "rename";
    case FsOp::kMkdir:
      return "create directory";
    case FsOp::kRemove:
      return "remove";
  }
  return "?";
}

// Whether `path` is `prefix` or below it.
bool UnderPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (prefix.back() == '/') prefix.remove_suffix(1);
  return path.starts_with(prefix) &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// The components of an absolute path; INVALID_ARGUMENT for a relative one or "..".
absl::StatusOr<std::vector<std::string>> SplitAbsolute(std::string_view path) {
  if (!path.starts_with('/')) {
    return absl::InvalidArgumentError(StrCat("not an absolute path: ", path));
  }
  std::vector<std::string> out;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view name = path.substr(start, slash - start);
    if (name == "..") return absl::InvalidArgumentError(StrCat("'..' in ", path));
    if (!name.empty() && name != ".") out.emplace_back(name);
    start = slash + 1;
  }
  return out;
}

int64_t SystemNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

}  // namespace

// ---------------------------------------------------------------------------------
// The RootDir and its readers, writers and pending files.

using NodePtr = std::shared_ptr<MemFileSystem::Node>;
using Lock = std::lock_guard<std::mutex>;

// The directory holding the last component of a relative path.
struct MemParent {
  NodePtr dir;
  std::string dir_rel;  // empty for the root
  std::string leaf;
};

// A walk in progress.
struct MemWalk {
  const std::function<void(const std::string&, const FileStat&)>& visit;
  const std::function<void(const std::string&, const std::string&)>& skipped;
  const size_t entries_max;
  size_t entries = 0;
};

class MemRootDir final : public RootDir {
 public:
  // A temporary file beside its target, removed when destroyed unless kept.
  struct Temp {
    const MemRootDir* root;
    MemParent parent;
    std::string name;
    NodePtr node;
    bool keep = false;
    ~Temp() {
      if (!keep) root->DropTemp(*this);
    }
  };

  MemRootDir(MemFileSystem* fs, std::string path, NodePtr node, uint64_t generation)
      : fs_(fs),
        path_(std::move(path)),
        node_(std::move(node)),
        generation_(generation) {}

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
  absl::Status RenameTemp(PendingFile& pending, const Expect& expect) const;
  absl::Status SyncAll() const override;

  // UNAVAILABLE after a Crash(). REQUIRES: fs_->mu_ held.
  absl::Status CheckAlive() const {
    if (fs_->generation_ != generation_) {
      return absl::UnavailableError(
          StrCat(path_, ": the file system crashed since this folder was opened"));
    }
    return absl::OkStatus();
  }
  MemFileSystem* fs() const { return fs_; }
  std::string Full(std::string_view rel) const { return Join(path_, rel); }
  void DropTemp(const Temp& temp) const;

 private:
  // As the disk's OpenParent: walks `rel` without following links, creating missing
  // directories (0755, made durable in their parent unless `sync` is false) when
  // `create`. NOT_FOUND when one is missing, FAILED_PRECONDITION when one is not a
  // directory. REQUIRES: mu_ held.
  absl::StatusOr<MemParent> Parent(std::string_view rel, bool create,
                                   bool sync = true) const;
  absl::Status MakeDirImpl(std::string_view rel, uint32_t mode, bool sync) const override;
  absl::Status ReplaceSymlinkImpl(std::string_view rel, std::string_view target,
                                  const Expect& expect, bool sync) const override;
  // The target must not be a directory and `expect` must hold. REQUIRES: mu_ held.
  absl::Status CheckTarget(const MemParent& parent, std::string_view rel,
                           const Expect& expect) const;
  // rename(2) of entry `from` of `from_dir` to `to` of `to_dir`. REQUIRES: mu_ held.
  absl::Status MoveEntry(MemFileSystem::Node& from_dir, const std::string& from,
                         MemFileSystem::Node& to_dir, const std::string& to,
                         bool no_replace, std::string_view rel) const;
  // Syncs `dir` (fsync of a directory). REQUIRES: mu_ held.
  absl::Status SyncDir(MemFileSystem::Node& dir, std::string_view dir_rel) const;
  // The first half of ReplaceFile and WriteTemp.
  absl::StatusOr<std::unique_ptr<Temp>> WriteTempFile(std::string_view rel,
                                                      const WriteFn& write, uint32_t mode,
                                                      int64_t mtime_ns,
                                                      const Expect& expect,
                                                      bool sync) const;
  absl::Status WalkDir(const NodePtr& dir, const std::string& dir_rel, size_t depth,
                       MemWalk& walk) const;
  absl::Status WalkEntry(const NodePtr& dir, const std::string& name,
                         const std::string& rel, size_t depth, MemWalk& walk) const;

  MemFileSystem* const fs_;
  const std::string path_;
  const NodePtr node_;
  const uint64_t generation_;
};

class MemReader final : public FileReader {
 public:
  MemReader(const MemRootDir* root, NodePtr node, std::string rel)
      : root_(root), node_(std::move(node)), rel_(std::move(rel)) {}
  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    FERRY_ASSIGN_OR_RETURN(size_t n, ReadAt(offset_, out, size));
    offset_ += n;
    return n;
  }
  absl::StatusOr<size_t> ReadAt(uint64_t offset, char* out, size_t size) override {
    assert(out != nullptr || size == 0);
    MemFileSystem* fs = root_->fs();
    Lock lock(fs->mu_);
    FERRY_RETURN_IF_ERROR(root_->CheckAlive());
    FERRY_RETURN_IF_ERROR(fs->MaybeFail(FsOp::kRead, root_->Full(rel_)));
    const std::string& data = *node_->data;
    if (offset >= data.size()) return 0;
    size_t n = std::min<uint64_t>(size, data.size() - offset);
    std::copy_n(data.data() + offset, n, out);
    return n;
  }

 private:
  const MemRootDir* root_;
  const NodePtr node_;  // the file opened, also once it is replaced
  const std::string rel_;
  uint64_t offset_ = 0;
};

class MemWriter final : public FileWriter {
 public:
  MemWriter(const MemRootDir* root, NodePtr node, std::string_view rel)
      : root_(root), node_(std::move(node)), rel_(rel) {}
  absl::Status Append(std::string_view data) override {
    MemFileSystem* fs = root_->fs();
    Lock lock(fs->mu_);
    FERRY_RETURN_IF_ERROR(root_->CheckAlive());
    FERRY_RETURN_IF_ERROR(fs->MaybeFail(FsOp::kWrite, root_->Full(rel_)));
    node_->MutableData().append(data);
    fs->Touch(*node_);
    node_->mtime_ns = node_->ctime_ns;
    return absl::OkStatus();
  }

 private:
  const MemRootDir* root_;
  const NodePtr node_;
  const std::string_view rel_;
};

class MemPendingFile final : public RootDir::PendingFile {
 public:
  MemPendingFile(const RootDir* owner, std::string rel,
                 std::unique_ptr<MemRootDir::Temp> written)
      : PendingFile(owner, std::move(rel)), temp(std::move(written)) {}
  std::unique_ptr<MemRootDir::Temp> temp;  // null once committed
};

void MemRootDir::DropTemp(const Temp& temp) const {
  Lock lock(fs_->mu_);
  if (!CheckAlive().ok()) return;
  auto it = temp.parent.dir->entries.find(temp.name);
  if (it != temp.parent.dir->entries.end() && it->second == temp.node) {
    temp.parent.dir->entries.erase(it);
    fs_->EntriesChanged(*temp.parent.dir);
  }
}

absl::StatusOr<MemParent> MemRootDir::Parent(std::string_view rel, bool create,
                                             bool sync) const {
  MemParent parent;
  parent.dir = node_;
  size_t start = 0;
  for (size_t slash = rel.find('/'); slash != std::string_view::npos;
       slash = rel.find('/', start)) {
    const std::string name(rel.substr(start, slash - start));
    const std::string_view shown = rel.substr(0, slash);
    NodePtr next = parent.dir->Find(name);
    if (next == nullptr && create) {
      if (parent.dir->detached) {
        return absl::NotFoundError(
            StrCat("create directory ", shown, ": No such file or directory"));
      }
      FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kMkdir, Full(shown)));
      next = fs_->NewNode(FileStat::kDir, 0755);
      parent.dir->entries[name] = next;
      fs_->EntriesChanged(*parent.dir);
      if (sync) {
        FERRY_RETURN_IF_ERROR(
            SyncDir(*parent.dir, rel.substr(0, start == 0 ? 0 : start - 1)));
      }
    }
    if (next == nullptr) {
      return absl::NotFoundError(
          StrCat("open directory ", shown, ": No such file or directory"));
    }
    if (next->type != FileStat::kDir) {
      return absl::FailedPreconditionError(
          StrCat(rel, ": ", shown,
                 next->type == FileStat::kSymlink ? " is a symbolic link; not followed"
                                                  : " is not a directory"));
    }
    parent.dir = std::move(next);
    start = slash + 1;
  }
  parent.dir_rel = std::string(rel.substr(0, start == 0 ? 0 : start - 1));
  parent.leaf = std::string(rel.substr(start));
  assert(!parent.leaf.empty());
  return parent;
}

absl::Status MemRootDir::SyncDir(MemFileSystem::Node& dir,
                                 std::string_view dir_rel) const {
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kSync, Full(dir_rel)));
  fs_->SyncDir(dir);
  return absl::OkStatus();
}

absl::Status MemRootDir::CheckTarget(const MemParent& parent, std::string_view rel,
                                     const Expect& expect) const {
  NodePtr current = parent.dir->Find(parent.leaf);
  if (current != nullptr && current->type == FileStat::kDir) {
    return absl::FailedPreconditionError(StrCat("replace ", rel, ": is a directory"));
  }
  return CheckExpect(
      expect, current ? std::optional<FileStat>(current->Stat()) : std::nullopt, rel);
}

absl::Status MemRootDir::MoveEntry(MemFileSystem::Node& from_dir, const std::string& from,
                                   MemFileSystem::Node& to_dir, const std::string& to,
                                   bool no_replace, std::string_view rel) const {
  NodePtr node = from_dir.Find(from);
  if (node == nullptr) {
    return absl::NotFoundError(StrCat("rename to ", rel, ": No such file or directory"));
  }
  if (to_dir.detached) {
    return absl::NotFoundError(StrCat("rename to ", rel, ": No such file or directory"));
  }
  NodePtr old = to_dir.Find(to);
  if (old == node) return absl::OkStatus();  // rename(2) of a file onto itself
  if (old != nullptr) {
    if (no_replace)
      return absl::AbortedError(StrCat(rel, " changed since scan: it exists"));
    const bool node_dir = node->type == FileStat::kDir;
    const bool old_dir = old->type == FileStat::kDir;
    if (node_dir && !old_dir) {
      return absl::FailedPreconditionError(
          StrCat("rename to ", rel, ": not a directory"));
    }
    if (!node_dir && old_dir) {
      return absl::FailedPreconditionError(StrCat("rename to ", rel, ": is a directory"));
    }
    if (old_dir && !old->entries.empty()) {
      return absl::FailedPreconditionError(
          StrCat("rename to ", rel, ": directory not empty"));
    }
    if (old_dir) old->detached = true;
  }
  from_dir.entries.erase(from);
  to_dir.entries[to] = node;
  fs_->EntriesChanged(from_dir);
  fs_->EntriesChanged(to_dir);
  fs_->Touch(*node);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<FileStat>> MemRootDir::Stat(std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kStat, Full(rel)));
  absl::StatusOr<MemParent> parent = Parent(rel, /*create=*/false);
  if (!parent.ok()) {
    if (absl::IsNotFound(parent.status()) ||
        absl::IsFailedPrecondition(parent.status())) {
      return std::nullopt;
    }
    return parent.status();
  }
  NodePtr node = parent->dir->Find(parent->leaf);
  if (node == nullptr) return std::nullopt;
  return node->Stat();
}

absl::Status MemRootDir::Walk(
    const std::function<void(const std::string& rel, const FileStat& stat)>& visit,
    const std::function<void(const std::string& rel, const std::string& why)>& skipped,
    size_t entries_max) const {
  assert(visit);
  MemWalk walk{visit, skipped, entries_max};
  return WalkDir(node_, "", 0, walk);
}

absl::Status MemRootDir::WalkDir(const NodePtr& dir, const std::string& dir_rel,
                                 size_t depth, MemWalk& walk) const {
  assert(depth <= kPathDepthMax);
  std::vector<std::string> names;
  {
    Lock lock(fs_->mu_);
    FERRY_RETURN_IF_ERROR(CheckAlive());
    FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kWalk, Full(dir_rel)));
    for (const auto& [name, node] : dir->entries) {
      if (++walk.entries > walk.entries_max) {
        return absl::ResourceExhaustedError(
            StrCat("walk: more than ", walk.entries_max, " entries"));
      }
      names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    std::string rel = dir_rel.empty() ? name : StrCat(dir_rel, "/", name);
    FERRY_RETURN_IF_ERROR(WalkEntry(dir, name, rel, depth + 1, walk));
  }
  return absl::OkStatus();
}

absl::Status MemRootDir::WalkEntry(const NodePtr& dir, const std::string& name,
                                   const std::string& rel, size_t depth,
                                   MemWalk& walk) const {
  if (absl::Status valid = ValidateRelativePath(rel); !valid.ok()) {
    if (walk.skipped) walk.skipped(rel, std::string(valid.message()));
    return absl::OkStatus();
  }
  NodePtr node;
  {
    Lock lock(fs_->mu_);
    node = dir->Find(name);
  }
  if (node == nullptr) return absl::OkStatus();  // vanished
  FileStat stat;
  {
    Lock lock(fs_->mu_);
    stat = node->Stat();
  }
  walk.visit(rel, stat);
  if (stat.type != FileStat::kDir) return absl::OkStatus();
  NodePtr now;
  {
    Lock lock(fs_->mu_);
    now = dir->Find(name);
  }
  if (now == nullptr) return absl::OkStatus();
  if (now != node) {
    if (walk.skipped) walk.skipped(rel, "replaced during the walk; not entered");
    return absl::OkStatus();
  }
  return WalkDir(node, rel, depth, walk);
}

absl::StatusOr<std::unique_ptr<FileReader>> MemRootDir::OpenForRead(
    std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_ASSIGN_OR_RETURN(MemParent parent, Parent(rel, /*create=*/false));
  NodePtr node = parent.dir->Find(parent.leaf);
  if (node == nullptr) {
    return absl::NotFoundError(StrCat("open ", rel, ": No such file or directory"));
  }
  if (node->type == FileStat::kSymlink) {
    return absl::FailedPreconditionError(
        StrCat("open ", rel, ": a symbolic link is in the way (not followed)"));
  }
  if (node->type != FileStat::kFile) {
    return absl::FailedPreconditionError(StrCat("open ", rel, ": not a regular file"));
  }
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kOpen, Full(rel)));
  return std::make_unique<MemReader>(this, std::move(node), std::string(rel));
}

absl::StatusOr<std::string> MemRootDir::ReadLink(std::string_view rel) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_ASSIGN_OR_RETURN(MemParent parent, Parent(rel, /*create=*/false));
  NodePtr node = parent.dir->Find(parent.leaf);
  if (node == nullptr) {
    return absl::NotFoundError(StrCat("read link ", rel, ": No such file or directory"));
  }
  if (node->type != FileStat::kSymlink) {
    return absl::FailedPreconditionError(
        StrCat("read link ", rel, ": not a symbolic link"));
  }
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kReadLink, Full(rel)));
  if (node->data->size() > kSymlinkTargetBytesMax) {
    return absl::FailedPreconditionError(StrCat(
        "read link ", rel, ": target longer than ", kSymlinkTargetBytesMax, " bytes"));
  }
  return *node->data;
}

absl::StatusOr<std::unique_ptr<MemRootDir::Temp>> MemRootDir::WriteTempFile(
    std::string_view rel, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
    const Expect& expect, bool sync) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  FERRY_RETURN_IF_ERROR(ValidateMode(mode));
  auto temp = std::make_unique<Temp>();
  temp->root = this;
  temp->keep = true;  // nothing to remove yet
  {
    Lock lock(fs_->mu_);
    FERRY_RETURN_IF_ERROR(CheckAlive());
    FERRY_ASSIGN_OR_RETURN(temp->parent, Parent(rel, /*create=*/true, sync));
    FERRY_RETURN_IF_ERROR(CheckTarget(temp->parent, rel, expect));  // before writing
    MemFileSystem::Node& dir = *temp->parent.dir;
    if (dir.detached) {
      return absl::NotFoundError(
          StrCat("create temporary file for ", rel, ": No such file or directory"));
    }
    FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kCreate, Full(rel)));
    for (int attempt = 0; attempt < kTempNameAttempts && temp->name.empty(); ++attempt) {
      std::string name = TempName(Mix64(++fs_->temp_names_));
      if (dir.Find(name) == nullptr) temp->name = std::move(name);
    }
    if (temp->name.empty()) {
      return absl::InternalError(StrCat("no free temporary file name for ", rel));
    }
    temp->node = fs_->NewNode(FileStat::kFile, 0600);
    dir.entries[temp->name] = temp->node;
    fs_->EntriesChanged(dir);
    temp->keep = false;
  }
  MemWriter writer(this, temp->node, rel);
  FERRY_RETURN_IF_ERROR(write(writer));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  MemFileSystem::Node& file = *temp->node;
  file.mode = mode & 0777;
  file.mtime_ns = mtime_ns;
  fs_->Touch(file);
  if (sync) {
    FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kSync, Full(rel)));
    fs_->SyncFile(file);
  }
  return temp;
}

absl::Status MemRootDir::ReplaceFile(std::string_view rel, const WriteFn& write,
                                     uint32_t mode, int64_t mtime_ns,
                                     const Expect& expect) const {
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<Temp> temp,
      WriteTempFile(rel, write, mode, mtime_ns, expect, /*sync=*/true));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_RETURN_IF_ERROR(CheckTarget(temp->parent, rel, expect));
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kRename, Full(rel)));
  MemFileSystem::Node& dir = *temp->parent.dir;
  FERRY_RETURN_IF_ERROR(
      MoveEntry(dir, temp->name, dir, temp->parent.leaf, expect.must_be_absent, rel));
  temp->keep = true;
  return SyncDir(dir, temp->parent.dir_rel);
}

absl::StatusOr<std::unique_ptr<RootDir::PendingFile>> MemRootDir::WriteTemp(
    std::string_view rel, const WriteFn& write, uint32_t mode, int64_t mtime_ns,
    const Expect& expect) const {
  FERRY_ASSIGN_OR_RETURN(
      std::unique_ptr<Temp> temp,
      WriteTempFile(rel, write, mode, mtime_ns, expect, /*sync=*/false));
  return std::unique_ptr<PendingFile>(
      std::make_unique<MemPendingFile>(this, std::string(rel), std::move(temp)));
}

absl::StatusOr<std::optional<FileStat>> MemRootDir::CommitTemp(
    PendingFile& base, const Expect& expect) const {
  FERRY_RETURN_IF_ERROR(RenameTemp(base, expect));
  // As a Stat of the path (with its injected faults): the simulation's faults stay
  // where they were when the caller asked for the stat itself.
  return Stat(base.rel());
}

absl::Status MemRootDir::RenameTemp(PendingFile& base, const Expect& expect) const {
  assert(base.owner() == this);
  auto& pending = static_cast<MemPendingFile&>(base);
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  assert(pending.temp != nullptr);  // not committed twice
  Temp& temp = *pending.temp;
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_RETURN_IF_ERROR(CheckTarget(temp.parent, pending.rel(), expect));
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kRename, Full(pending.rel())));
  MemFileSystem::Node& dir = *temp.parent.dir;
  FERRY_RETURN_IF_ERROR(MoveEntry(dir, temp.name, dir, temp.parent.leaf,
                                  expect.must_be_absent, pending.rel()));
  temp.keep = true;
  pending.temp.reset();
  return absl::OkStatus();
}

absl::Status MemRootDir::SyncAll() const {
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kSync, path_));
  fs_->SyncTree(*fs_->root_);
  return absl::OkStatus();
}

absl::Status MemRootDir::ReplaceSymlinkImpl(std::string_view rel, std::string_view target,
                                            const Expect& expect, bool sync) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  FERRY_RETURN_IF_ERROR(ValidateSymlinkTarget(rel, target));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_ASSIGN_OR_RETURN(MemParent parent, Parent(rel, /*create=*/true, sync));
  FERRY_RETURN_IF_ERROR(CheckTarget(parent, rel, expect));
  if (parent.dir->detached) {
    return absl::NotFoundError(
        StrCat("symbolic link ", rel, ": No such file or directory"));
  }
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kCreate, Full(rel)));
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kRename, Full(rel)));
  NodePtr link = fs_->NewNode(FileStat::kSymlink, 0777);
  link->data = std::make_shared<std::string>(target);
  link->durable_data = link->data;  // written with the entry
  parent.dir->entries[parent.leaf] = std::move(link);
  fs_->EntriesChanged(*parent.dir);
  return sync ? SyncDir(*parent.dir, parent.dir_rel) : absl::OkStatus();
}

absl::Status MemRootDir::MakeDirImpl(std::string_view rel, uint32_t mode,
                                     bool sync) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateMode(mode));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  FERRY_ASSIGN_OR_RETURN(MemParent parent, Parent(rel, /*create=*/true, sync));
  NodePtr dir = parent.dir->Find(parent.leaf);
  if (dir == nullptr) {
    if (parent.dir->detached) {
      return absl::NotFoundError(
          StrCat("create directory ", rel, ": No such file or directory"));
    }
    FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kMkdir, Full(rel)));
    dir = fs_->NewNode(FileStat::kDir, 0700);
    parent.dir->entries[parent.leaf] = dir;
    fs_->EntriesChanged(*parent.dir);
  } else if (dir->type != FileStat::kDir) {
    return absl::FailedPreconditionError(
        StrCat("create directory ", rel, ": exists and is not a directory"));
  }
  dir->mode = mode & 0777;
  fs_->Touch(*dir);
  return sync ? SyncDir(*parent.dir, parent.dir_rel) : absl::OkStatus();
}

absl::Status MemRootDir::Remove(std::string_view rel, const Expect& expect) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(rel));
  FERRY_RETURN_IF_ERROR(ValidateExpect(expect));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  absl::StatusOr<MemParent> parent = Parent(rel, /*create=*/false);
  if (!parent.ok()) {
    const bool absent =
        absl::IsNotFound(parent.status()) || absl::IsFailedPrecondition(parent.status());
    return absent ? absl::OkStatus() : parent.status();
  }
  NodePtr node = parent->dir->Find(parent->leaf);
  if (node == nullptr) return absl::OkStatus();
  FERRY_RETURN_IF_ERROR(CheckExpect(expect, node->Stat(), rel));
  if (node->type == FileStat::kDir && !node->entries.empty()) {
    return absl::FailedPreconditionError(StrCat("remove ", rel, ": directory not empty"));
  }
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail(FsOp::kRemove, Full(rel)));
  parent->dir->entries.erase(parent->leaf);
  if (node->type == FileStat::kDir) node->detached = true;
  fs_->EntriesChanged(*parent->dir);
  return SyncDir(*parent->dir, parent->dir_rel);
}

absl::Status MemRootDir::Rename(std::string_view from, std::string_view to,
                                const Expect& from_expect,
                                const Expect& to_expect) const {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(from));
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(to));
  FERRY_RETURN_IF_ERROR(ValidateExpect(from_expect));
  FERRY_RETURN_IF_ERROR(ValidateExpect(to_expect));
  FERRY_RETURN_IF_ERROR(CheckNotIntoItself(from, to));
  Lock lock(fs_->mu_);
  FERRY_RETURN_IF_ERROR(CheckAlive());
  absl::StatusOr<MemParent> source = Parent(from, /*create=*/false);
  NodePtr node = source.ok() ? source->dir->Find(source->leaf) : nullptr;
  if (!source.ok() && !absl::IsNotFound(source.status()) &&
      !absl::IsFailedPrecondition(source.status())) {
    return source.status();
  }
  if (node == nullptr)
    return absl::NotFoundError(StrCat("rename ", from, ": does not exist"));
  FERRY_RETURN_IF_ERROR(CheckExpect(from_expect, node->Stat(), from));
  FERRY_ASSIGN_OR_RETURN(MemParent dest, Parent(to, /*create=*/true));
  NodePtr old = dest.dir->Find(dest.leaf);
  FERRY_RETURN_IF_ERROR(CheckExpect(
      to_expect, old ? std::optional<FileStat>(old->Stat()) : std::nullopt, to));
  FERRY_RETURN_IF_ERROR(fs_->MaybeFail2(FsOp::kRename, Full(from), Full(to)));
  FERRY_RETURN_IF_ERROR(MoveEntry(*source->dir, source->leaf, *dest.dir, dest.leaf,
                                  to_expect.must_be_absent, to));
  FERRY_RETURN_IF_ERROR(SyncDir(*dest.dir, dest.dir_rel));
  if (source->dir == dest.dir) return absl::OkStatus();
  return SyncDir(*source->dir, source->dir_rel);
}

// ---------------------------------------------------------------------------------
// MemFileSystem

MemFileSystem::MemFileSystem(std::function<int64_t()> now_ns)
    : now_ns_(now_ns ? std::move(now_ns) : SystemNowNs) {
  Lock lock(mu_);
  root_ = std::make_shared<Node>();
  root_->type = FileStat::kDir;
  root_->inode = 1;
  root_->mode = root_->durable_mode = 0755;
  Touch(*root_);
  root_->mtime_ns = root_->durable_mtime_ns = root_->ctime_ns;
}

MemFileSystem::~MemFileSystem() = default;

MemFileSystem::NodePtr MemFileSystem::NewNode(int type, uint32_t mode) {
  auto node = std::make_shared<Node>();
  node->type = static_cast<FileStat::Type>(type);
  node->inode = next_inode_++;
  node->mode = node->durable_mode = mode;
  Touch(*node);
  node->mtime_ns = node->durable_mtime_ns = node->ctime_ns;
  return node;
}

void MemFileSystem::Touch(Node& node) { node.ctime_ns = now_ns_(); }

void MemFileSystem::EntriesChanged(Node& dir) {
  assert(dir.type == FileStat::kDir);
  Touch(dir);
  dir.mtime_ns = dir.ctime_ns;
}

absl::Status MemFileSystem::MaybeFail(FsOp op, std::string_view path) {
  return MaybeFail2(op, path, path);
}

absl::Status MemFileSystem::MaybeFail2(FsOp op, std::string_view a, std::string_view b) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    Fault& fault = *it;
    if (fault.op != FsOp::kAny && fault.op != op) continue;
    if (!UnderPrefix(a, fault.path_prefix) && !UnderPrefix(b, fault.path_prefix))
      continue;
    if (fault.skip > 0) {
      --fault.skip;
      continue;
    }
    absl::Status status(fault.status.code(),
                        StrCat(OpName(op), " ", a, ": ", fault.status.message()));
    if (fault.count > 0 && --fault.count == 0) faults_.erase(it);
    ++faults_fired_;
    return status;
  }
  return absl::OkStatus();
}

void MemFileSystem::SyncFile(Node& file) {
  file.durable_data = file.data;
  file.durable_mode = file.mode;
  file.durable_mtime_ns = file.mtime_ns;
}

void MemFileSystem::SyncDir(Node& dir) {
  assert(dir.type == FileStat::kDir);
  dir.durable_entries = dir.entries;
  dir.durable_mode = dir.mode;
  dir.durable_mtime_ns = dir.mtime_ns;
  for (auto& [name, child] : dir.entries) {
    if (child->type == FileStat::kFile) continue;  // a file's own fsync says
    child->durable_mode = child->mode;
    child->durable_mtime_ns = child->mtime_ns;
  }
}

void MemFileSystem::SyncTree(Node& dir) {
  SyncDir(dir);
  for (auto& [name, child] : dir.entries) {
    if (child->type == FileStat::kDir) {
      SyncTree(*child);
    } else if (child->type == FileStat::kFile) {
      SyncFile(*child);
    }
  }
}

void MemFileSystem::SyncAll() {
  Lock lock(mu_);
  SyncTree(*root_);
}

void MemFileSystem::SyncPath(const std::string& path) {
  Lock lock(mu_);
  NodePtr at = root_;
  size_t start = 0;
  while (at != nullptr) {
    if (at->type == FileStat::kFile) {
      SyncFile(*at);
      return;
    }
    if (at->type != FileStat::kDir) return;
    SyncDir(*at);
    while (start < path.size() && path[start] == '/') ++start;
    if (start >= path.size()) return;
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    at = at->Find(path.substr(start, end - start));
    start = end;
  }
}

void MemFileSystem::Crash() {
  Lock lock(mu_);
  ++generation_;
  faults_.clear();
  std::set<const Node*> seen = {root_.get()};
  // Depth-first in name order; a node met twice stays at its first place.
  std::vector<Node*> todo = {root_.get()};
  while (!todo.empty()) {
    Node& node = *todo.back();
    todo.pop_back();
    node.mode = node.durable_mode;
    node.mtime_ns = node.durable_mtime_ns;
    if (node.type == FileStat::kFile) {
      node.data = node.durable_data ? std::make_shared<std::string>(*node.durable_data)
                                    : std::make_shared<std::string>();
      node.durable_data = node.data;
      continue;
    }
    if (node.type != FileStat::kDir) continue;
    node.detached = false;  // removed without a sync: back again
    node.entries.clear();
    for (auto& [name, child] : node.durable_entries) {
      if (seen.insert(child.get()).second) node.entries.emplace(name, child);
    }
    node.durable_entries = node.entries;
    for (auto it = node.entries.rbegin(); it != node.entries.rend(); ++it) {
      todo.push_back(it->second.get());
    }
  }
}

void MemFileSystem::InjectFault(Fault fault) {
  assert(!fault.status.ok());
  assert(fault.count != 0);
  Lock lock(mu_);
  faults_.push_back(std::move(fault));
}

void MemFileSystem::ClearFaults() {
  Lock lock(mu_);
  faults_.clear();
}

uint64_t MemFileSystem::faults_fired() const {
  Lock lock(mu_);
  return faults_fired_;
}

absl::StatusOr<std::unique_ptr<RootDir>> MemFileSystem::OpenRoot(
    const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitAbsolute(path));
  Lock lock(mu_);
  std::deque<std::string> todo(parts.begin(), parts.end());
  std::vector<NodePtr> stack = {root_};
  int hops = 0;
  while (!todo.empty()) {
    std::string name = std::move(todo.front());
    todo.pop_front();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (stack.size() > 1) stack.pop_back();
      continue;
    }
    if (stack.back()->type != FileStat::kDir) {
      return absl::FailedPreconditionError(StrCat(path, " is not a directory"));
    }
    NodePtr next = stack.back()->Find(name);
    if (next == nullptr) {
      return absl::NotFoundError(
          StrCat("open folder ", path, ": No such file or directory"));
    }
    if (next->type == FileStat::kSymlink) {
      if (++hops > kSymlinkHopsMax) {
        return absl::FailedPreconditionError(
            StrCat("open folder ", path, ": too many levels of symbolic links"));
      }
      const std::string& target = *next->data;
      std::vector<std::string> more;
      for (size_t start = 0; start <= target.size();) {
        size_t slash = target.find('/', start);
        if (slash == std::string::npos) slash = target.size();
        more.push_back(target.substr(start, slash - start));
        start = slash + 1;
      }
      todo.insert(todo.begin(), more.begin(), more.end());
      if (target.starts_with('/')) stack.resize(1);
      continue;
    }
    stack.push_back(std::move(next));
  }
  if (stack.back()->type != FileStat::kDir) {
    return absl::FailedPreconditionError(StrCat(path, " is not a directory"));
  }
  return std::unique_ptr<RootDir>(
      std::make_unique<MemRootDir>(this, path, stack.back(), generation_));
}

// Direct access.

// The parent directory of absolute `path` and its last component, walking from `root`
// without following links; `make_dir` (may be empty) creates a missing directory.
absl::StatusOr<std::pair<NodePtr, std::string>> LocateFrom(
    const NodePtr& root, const std::string& path,
    const std::function<NodePtr(MemFileSystem::Node& parent, const std::string& name)>&
        make_dir) {
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> parts, SplitAbsolute(path));
  if (parts.empty()) return absl::InvalidArgumentError("the root itself");
  NodePtr dir = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    NodePtr next = dir->Find(parts[i]);
    if (next == nullptr && make_dir) next = make_dir(*dir, parts[i]);
    if (next == nullptr)
      return absl::NotFoundError(StrCat(path, ": a parent is missing"));
    if (next->type != FileStat::kDir) {
      return absl::FailedPreconditionError(
          StrCat(path, ": ", parts[i], " is not a directory (links are not followed)"));
    }
    dir = std::move(next);
  }
  return std::make_pair(dir, parts.back());
}

absl::StatusOr<MemFileSystem::Location> MemFileSystem::Locate(
    const std::string& path) const {
  FERRY_ASSIGN_OR_RETURN(auto at, LocateFrom(root_, path, nullptr));
  return Location{std::move(at.first), std::move(at.second)};
}

absl::StatusOr<MemFileSystem::Location> MemFileSystem::LocateCreating(
    const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(
      auto at, LocateFrom(root_, path, [&](Node& parent, const std::string& name) {
        NodePtr dir = NewNode(FileStat::kDir, 0755);
        parent.entries[name] = dir;
        EntriesChanged(parent);
        return dir;
      }));
  return Location{std::move(at.first), std::move(at.second)};
}

absl::Status MemFileSystem::WriteFile(const std::string& path, std::string_view data,
                                      uint32_t mode, std::optional<int64_t> mtime_ns) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, LocateCreating(path));
  NodePtr file = at.dir->Find(at.leaf);
  if (file == nullptr) {
    file = NewNode(FileStat::kFile, mode & 07777);
    at.dir->entries[at.leaf] = file;
    EntriesChanged(*at.dir);
  } else if (file->type != FileStat::kFile) {
    return absl::FailedPreconditionError(StrCat(path, " is not a regular file"));
  }
  file->MutableData().assign(data);
  file->mode = mode & 07777;
  Touch(*file);
  file->mtime_ns = mtime_ns.value_or(file->ctime_ns);
  return absl::OkStatus();
}

absl::Status MemFileSystem::Mkdir(const std::string& path, uint32_t mode) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, LocateCreating(path));
  NodePtr dir = at.dir->Find(at.leaf);
  if (dir != nullptr) {
    if (dir->type == FileStat::kDir) return absl::OkStatus();
    return absl::FailedPreconditionError(StrCat(path, " exists and is not a directory"));
  }
  at.dir->entries[at.leaf] = NewNode(FileStat::kDir, mode & 07777);
  EntriesChanged(*at.dir);
  return absl::OkStatus();
}

absl::Status MemFileSystem::Symlink(const std::string& path, std::string_view target) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, Locate(path));
  if (at.dir->Find(at.leaf) != nullptr) {
    return absl::AlreadyExistsError(StrCat(path, " exists"));
  }
  NodePtr link = NewNode(FileStat::kSymlink, 0777);
  link->data = std::make_shared<std::string>(target);
  link->durable_data = link->data;
  at.dir->entries[at.leaf] = std::move(link);
  EntriesChanged(*at.dir);
  return absl::OkStatus();
}

absl::Status MemFileSystem::MakeFifo(const std::string& path) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, Locate(path));
  if (at.dir->Find(at.leaf) != nullptr) {
    return absl::AlreadyExistsError(StrCat(path, " exists"));
  }
  at.dir->entries[at.leaf] = NewNode(FileStat::kOther, 0644);
  EntriesChanged(*at.dir);
  return absl::OkStatus();
}

absl::Status MemFileSystem::RemoveAll(const std::string& path) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, Locate(path));
  NodePtr node = at.dir->Find(at.leaf);
  if (node == nullptr) return absl::NotFoundError(StrCat(path, " does not exist"));
  std::vector<NodePtr> todo = {node};
  while (!todo.empty()) {  // mark the directories below as removed
    NodePtr next = std::move(todo.back());
    todo.pop_back();
    if (next->type != FileStat::kDir) continue;
    next->detached = true;
    for (auto& [name, child] : next->entries) todo.push_back(child);
    next->entries.clear();
  }
  at.dir->entries.erase(at.leaf);
  EntriesChanged(*at.dir);
  return absl::OkStatus();
}

absl::Status MemFileSystem::Rename(const std::string& from, const std::string& to) {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location source, Locate(from));
  FERRY_ASSIGN_OR_RETURN(Location dest, Locate(to));
  NodePtr node = source.dir->Find(source.leaf);
  if (node == nullptr) return absl::NotFoundError(StrCat(from, " does not exist"));
  if (UnderPrefix(to, from) && to != from) {
    return absl::InvalidArgumentError(StrCat("rename ", from, " into itself"));
  }
  NodePtr old = dest.dir->Find(dest.leaf);
  if (old == node) return absl::OkStatus();
  if (old != nullptr) {
    if ((old->type == FileStat::kDir) != (node->type == FileStat::kDir) ||
        (old->type == FileStat::kDir && !old->entries.empty())) {
      return absl::FailedPreconditionError(StrCat("rename ", from, " to ", to));
    }
    if (old->type == FileStat::kDir) old->detached = true;
  }
  source.dir->entries.erase(source.leaf);
  dest.dir->entries[dest.leaf] = node;
  EntriesChanged(*source.dir);
  EntriesChanged(*dest.dir);
  Touch(*node);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<FileStat>> MemFileSystem::Stat(
    const std::string& path) const {
  Lock lock(mu_);
  if (path == "/") return root_->Stat();
  absl::StatusOr<Location> at = Locate(path);
  if (!at.ok()) {
    if (absl::IsNotFound(at.status()) || absl::IsFailedPrecondition(at.status())) {
      return std::nullopt;
    }
    return at.status();
  }
  NodePtr node = at->dir->Find(at->leaf);
  if (node == nullptr) return std::nullopt;
  return node->Stat();
}

absl::StatusOr<std::string> MemFileSystem::ReadFile(const std::string& path) const {
  Lock lock(mu_);
  FERRY_ASSIGN_OR_RETURN(Location at, Locate(path));
  NodePtr node = at.dir->Find(at.leaf);
  if (node == nullptr) return absl::NotFoundError(StrCat(path, " does not exist"));
  if (node->type != FileStat::kFile) {
    return absl::FailedPreconditionError(StrCat(path, " is not a regular file"));
  }
  return *node->data;
}

absl::StatusOr<std::vector<std::string>> MemFileSystem::List(
    const std::string& path) const {
  Lock lock(mu_);
  NodePtr dir = root_;
  if (path != "/") {
    FERRY_ASSIGN_OR_RETURN(Location at, Locate(path));
    dir = at.dir->Find(at.leaf);
  }
  if (dir == nullptr) return absl::NotFoundError(StrCat(path, " does not exist"));
  if (dir->type != FileStat::kDir) {
    return absl::FailedPreconditionError(StrCat(path, " is not a directory"));
  }
  std::vector<std::string> names;
  for (const auto& [name, node] : dir->entries) names.push_back(name);
  return names;
}

}  // namespace ferry::files
