#include "src/client/collections.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "src/connectors/files/files_connector.h"
#include "src/connectors/pim/record.h"
#include "src/connectors/pim/records_connector.h"
#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/engine/chunk_cache.h"
#include "src/engine/shadow_store.h"

namespace ferry::client {
namespace {

constexpr char kCollectionsDir[] = "/collections";
constexpr size_t kLocalCollectionsMax = 10000;
// Plaintext of recently edited chunks kept per collection, for sending edits as deltas.
constexpr uint64_t kChunkCacheBytesMax = 256u << 20;
// What one sync adds to it: small edits are what deltas are for, and a sync that
// rewrites many large files should not write all of their data twice.
constexpr uint64_t kChunkCacheWrittenPerSyncMax = 64u << 20;

std::string StatePath(const std::string& home, const std::string& collection_id) {
  return StrCat(home, kCollectionsDir, "/", collection_id, "/shadow.db");
}

// The folder of `local`'s state: its shadow, chunk cache and sync lock.
std::string StateDir(const LocalCollection& local) {
  return local.state_path.substr(0, local.state_path.rfind('/'));
}

absl::StatusOr<std::string> AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return ErrnoStatus(errno, "getcwd", ".");
  return StrCat(cwd, "/", path);
}

absl::StatusOr<LocalCollection> ReadLocal(const std::string& state_path) {
  FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(state_path));
  LocalCollection local;
  local.state_path = state_path;
  FERRY_ASSIGN_OR_RETURN(local.collection_id, shadow->Setting("collection_id"));
  FERRY_ASSIGN_OR_RETURN(local.name, shadow->Setting("name"));
  FERRY_ASSIGN_OR_RETURN(local.kind, shadow->Setting("kind"));
  FERRY_ASSIGN_OR_RETURN(local.root, shadow->Setting("root"));
  if (local.collection_id.empty() || local.name.empty()) {
    return absl::DataLossError(
        StrCat(state_path, " does not say which collection it is"));
  }
  return local;
}

// The connector of `local`'s kind over its root. `folder_held`: this process holds the
// folder's lock (TakeFolderLock), so every temporary file of ferry's in it is left over.
absl::StatusOr<std::unique_ptr<Connector>> MakeConnector(
    const LocalCollection& local, const seal::ContentHasher& hasher, bool folder_held) {
  if (local.kind == "files") {
    files::FilesOptions options;
    options.root = local.root;
    options.leftover_temps.all = folder_held;
    return std::make_unique<files::FilesConnector>(options, &hasher,
                                                   files::ChunkerSeed(hasher));
  }
  if (local.kind == "contacts" || local.kind == "calendar") {
    pim::RecordsOptions options;
    options.root = local.root;
    options.kind =
        local.kind == "contacts" ? pim::RecordKind::kContact : pim::RecordKind::kCalendar;
    options.leftover_temps.all = folder_held;
    return std::make_unique<pim::RecordsConnector>(options);
  }
  return absl::FailedPreconditionError(
      StrCat("collection '", local.name, "' holds '", local.kind,
             "', which this version of ferry cannot sync"));
}

// An exclusive flock, held until destroyed; it goes with the process (kill -9 included).
class HeldLock {
 public:
  // Opens `path` with `flags` and locks it; UNAVAILABLE with `busy` when another
  // process holds it.
  static absl::StatusOr<HeldLock> Take(const std::string& path, int flags,
                                       const std::string& busy) {
    HeldLock lock(::open(path.c_str(), flags | O_CLOEXEC, 0600));
    if (lock.fd_ < 0) return ErrnoStatus(errno, "open", path);
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "flock", path);
      return absl::UnavailableError(busy);
    }
    return lock;
  }
  HeldLock() = default;  // holds nothing
  HeldLock(HeldLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  HeldLock& operator=(HeldLock&&) = delete;
  ~HeldLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool held() const { return fd_ >= 0; }

 private:
  explicit HeldLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// One sync (or conflict resolution) of a collection at a time on a device: two
// processes applying and committing against one shadow would each take the other's
// writes for local edits. An flock of the collection's sync.lock.
absl::StatusOr<HeldLock> TakeCollectionLock(const LocalCollection& local) {
  return HeldLock::Take(
      StateDir(local) + "/sync.lock", O_RDWR | O_CREAT | O_NOFOLLOW,
      StrCat("another ferry process (`ferry watch` or `ferry sync`) is syncing '",
             local.name, "' on this device; try again when it is done"));
}

// One engine at a time writes into a folder, for whichever home or collection: an flock
// of the folder itself, taken after the collection's lock. Holding it, a temporary file
// of ferry's found by the scan is left over from a crash and removed at once, not after
// an hour: a leftover in a directory that another device then deleted kept the
// directory here ("not empty") until then. A folder that cannot be opened (the
// connector reports it missing) or locked (a file system without flock on directories,
// as NFS, which per flock(2) emulates it with byte-range locks) is synced without it.
absl::StatusOr<HeldLock> TakeFolderLock(const LocalCollection& local) {
  absl::StatusOr<HeldLock> lock = HeldLock::Take(
      local.root, O_RDONLY | O_DIRECTORY,
      StrCat("another ferry process is syncing a collection in ", local.root,
             " (for another --home, or another collection of this one); try again "
             "when it is done"));
  if (!lock.ok() && !absl::IsUnavailable(lock.status())) return HeldLock();
  return lock;
}

}  // namespace

absl::StatusOr<std::vector<LocalCollection>> ListLocalCollections(
    const std::string& home) {
  std::vector<LocalCollection> out;
  std::string dir = home + kCollectionsDir;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return ErrnoStatus(errno, "opendir", dir);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> closer(d, &::closedir);
  for (struct dirent* entry; (entry = ::readdir(d)) != nullptr;) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (out.size() >= kLocalCollectionsMax) break;
    std::string state = StatePath(home, name);
    if (!FileExists(state)) continue;
    FERRY_ASSIGN_OR_RETURN(LocalCollection local, ReadLocal(state));
    out.push_back(std::move(local));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

absl::StatusOr<LocalCollection> AddCollection(Device& device, const std::string& name,
                                              const std::string& kind,
                                              const std::string& root) {
  if (kind != "files" && kind != "contacts" && kind != "calendar") {
    return absl::InvalidArgumentError(
        StrCat("kind '", kind, "' is not one of files, contacts, calendar"));
  }
  FERRY_ASSIGN_OR_RETURN(std::string path, AbsolutePath(root));
  std::string home = device.home();
  FERRY_ASSIGN_OR_RETURN(std::vector<LocalCollection> existing,
                         ListLocalCollections(home));
  for (const LocalCollection& c : existing) {
    if (c.name == name) {
      return absl::FailedPreconditionError(
          StrCat("this device already syncs '", name, "' with ", c.root));
    }
    if (c.root == path) {
      return absl::FailedPreconditionError(
          StrCat(path, " is already synced as collection '", c.name, "'"));
    }
  }
  absl::StatusOr<CollectionInfo> info = device.FindCollection(name);
  if (absl::IsNotFound(info.status())) info = device.CreateCollection(name, kind);
  FERRY_RETURN_IF_ERROR(info.status());
  if (info->kind != kind) {
    return absl::FailedPreconditionError(
        StrCat("collection '", name, "' holds ", info->kind, ", not ", kind));
  }
  FERRY_RETURN_IF_ERROR(MakeDirs(path, 0755));
  LocalCollection local;
  local.collection_id = info->collection_id;
  local.name = name;
  local.kind = kind;
  local.root = path;
  local.state_path = StatePath(home, info->collection_id);
  // The shadow is made under another name and renamed into place once it says which
  // collection it is: a crash in between leaves no half-added collection behind.
  std::string dir = StrCat(home, kCollectionsDir, "/", info->collection_id);
  FERRY_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  std::string adding = dir + "/shadow.db.adding";
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink(StrCat(adding, suffix).c_str());  // left by an add that crashed
  }
  {
    FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(adding));
    engine::ShadowUpdate update;
    update.settings = {{"collection_id", local.collection_id},
                       {"name", name},
                       {"kind", kind},
                       {"root", path}};
    FERRY_RETURN_IF_ERROR(shadow->Commit(update));
  }  // closed: its write-ahead log is folded in and removed
  if (::rename(adding.c_str(), local.state_path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename to", local.state_path);
  }
  FERRY_RETURN_IF_ERROR(SyncDir(dir));
  return local;
}

absl::StatusOr<SyncReport> SyncCollection(Device& device, const LocalCollection& local,
                                          const SyncOptions& options) {
  FERRY_ASSIGN_OR_RETURN(HeldLock lock, TakeCollectionLock(local));
  FERRY_ASSIGN_OR_RETURN(HeldLock folder, TakeFolderLock(local));
  FERRY_ASSIGN_OR_RETURN(CollectionInfo info, device.FindCollection(local.name));
  if (info.collection_id != local.collection_id) {
    return absl::FailedPreconditionError(StrCat(
        "collection '", local.name, "' on the server is not the one this device added"));
  }
  FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(local.state_path));
  std::string cache_path = StateDir(local) + "/chunk-cache.db";
  FERRY_ASSIGN_OR_RETURN(auto cache,
                         engine::ChunkCache::Open(cache_path, kChunkCacheBytesMax,
                                                  kChunkCacheWrittenPerSyncMax));
  seal::ContentHasher hasher(info.key);
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Connector> connector,
                         MakeConnector(local, hasher, folder.held()));
  EngineConfig config;
  config.collection_id = local.collection_id;
  config.device_id = device.state().device_id;
  config.key = &info.key;
  config.client = &device.client();
  config.connector = connector.get();
  config.shadow = shadow.get();
  config.cache = cache.get();
  return Sync(config, options);
}

absl::StatusOr<std::vector<ConflictView>> ListConflicts(const LocalCollection& local) {
  FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(local.state_path));
  FERRY_ASSIGN_OR_RETURN(std::vector<engine::ConflictRecord> records,
                         shadow->Conflicts());
  std::vector<ConflictView> out;
  for (const auto& r : records) {
    out.push_back({r.id, r.time_ms, r.item_id, r.kind, r.kept_as, r.detail, r.field,
                   r.kept_value, r.other_value, r.resolved});
  }
  return out;
}

absl::Status ResolveConflict(Device& device, const LocalCollection& local,
                             int64_t conflict_id, const std::string& take) {
  FERRY_ASSIGN_OR_RETURN(HeldLock lock, TakeCollectionLock(local));
  FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(local.state_path));
  FERRY_ASSIGN_OR_RETURN(std::vector<engine::ConflictRecord> records,
                         shadow->Conflicts());
  auto record = std::find_if(records.begin(), records.end(),
                             [&](const auto& r) { return r.id == conflict_id; });
  if (record == records.end()) {
    return absl::NotFoundError(
        StrCat("collection '", local.name, "' has no conflict ", conflict_id));
  }
  if (record->field.empty()) {
    return absl::FailedPreconditionError(
        StrCat("conflict ", local.name, ":", conflict_id, " is about a whole item; ",
               record->kept_as.empty()
                   ? std::string("both versions were kept")
                   : StrCat("the other version is kept as ", record->kept_as),
               ": keep, edit or delete that instead"));
  }
  engine::ShadowUpdate done;
  done.resolved_conflicts.push_back(conflict_id);
  if (take == "kept") return shadow->Commit(done);

  // The switch is a local edit of the record: written now, pushed by the next sync
  // (and, being the latest edit, it wins there).
  FERRY_ASSIGN_OR_RETURN(CollectionInfo info, device.FindCollection(local.name));
  seal::ContentHasher hasher(info.key);
  FERRY_ASSIGN_OR_RETURN(HeldLock folder, TakeFolderLock(local));  // it writes there
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Connector> connector,
                         MakeConnector(local, hasher, folder.held()));
  if (!connector->DataPresent()) {
    return absl::FailedPreconditionError(StrCat(local.root, " is not there"));
  }
  engine::ItemMap synced;
  engine::StampMap stamps;
  FERRY_RETURN_IF_ERROR(shadow->Load(&synced, &stamps));
  FERRY_ASSIGN_OR_RETURN(ScanResult scan, connector->Scan(synced, stamps));
  auto item = scan.items.find(record->item_id);
  if (item == scan.items.end()) {
    return absl::NotFoundError(StrCat(record->item_id, " is not here any more"));
  }
  v1::Item changed = *item->second.item;
  const v1::Field* now = engine::FindField(changed, record->field);
  std::string value;
  if (take == "other") {
    value = record->other_value;
  } else {
    std::string current = now != nullptr ? now->bytes() : record->kept_value;
    // The value as it appears in the file; a line break becomes the "\n" escape.
    std::string typed;
    for (char c : take) {
      if (c == '\r') continue;
      if (c == '\n') {
        typed += "\\n";
      } else {
        typed += c;
      }
    }
    value = pim::WithFieldValueText(current, typed);
  }
  auto* fields = changed.mutable_fields();
  for (int i = 0; i < fields->size(); ++i) {
    if (fields->Get(i).name() == record->field) {
      fields->erase(fields->begin() + i);
      break;
    }
  }
  if (!value.empty()) engine::SetBytesField(&changed, record->field, value);
  FERRY_RETURN_IF_ERROR(
      connector->Apply(changed.id(), item->second.stamp, &changed, nullptr).status());
  return shadow->Commit(done);
}

absl::StatusOr<LocalStatus> GetLocalStatus(const LocalCollection& local) {
  FERRY_ASSIGN_OR_RETURN(auto shadow, engine::ShadowStore::Open(local.state_path));
  LocalStatus status;
  FERRY_ASSIGN_OR_RETURN(status.cursor, shadow->Cursor());
  FERRY_ASSIGN_OR_RETURN(status.items, shadow->ItemCount());
  FERRY_ASSIGN_OR_RETURN(std::string intent, shadow->Intent());
  status.push_pending = !intent.empty();
  FERRY_ASSIGN_OR_RETURN(std::vector<engine::ConflictRecord> conflicts,
                         shadow->Conflicts());
  status.conflicts = static_cast<size_t>(std::count_if(
      conflicts.begin(), conflicts.end(), [](const auto& c) { return !c.resolved; }));
  return status;
}

}  // namespace ferry::client
