#include "src/connectors/files/files_connector.h"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <ctime>
#include <mutex>
#include <thread>

#include "src/connectors/files/ignore.h"
#include "src/connectors/files/path_rules.h"
#include "src/connectors/files/root_dir.h"
#include "src/core/file_util.h"
#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/engine/items.h"

namespace ferry::files {
namespace {

// Field names of a file item (docs/formats/files.md).
constexpr char kType[] = "type";
constexpr char kMode[] = "mode";
constexpr char kMtime[] = "mtime_ns";
constexpr char kContent[] = "content";
constexpr char kTarget[] = "target";
constexpr char kIgnoreFile[] = ".ferryignore";
constexpr size_t kIgnoreFileBytesMax = 1u << 20;
// Chunks fetched per window while a file is written: bounds memory per file.
constexpr size_t kWriteWindowChunksMax = 64;
constexpr uint64_t kWriteWindowBytesMax = 16u << 20;
// Conflict copies tried per item before giving up on a free name.
constexpr int kConflictNameAttemptsMax = 100;

std::string TypeName(FileStat::Type type) {
  switch (type) {
    case FileStat::kFile:
      return "file";
    case FileStat::kDir:
      return "dir";
    case FileStat::kSymlink:
      return "symlink";
    case FileStat::kOther:
      break;
  }
  return "other";
}

// "type:size:mtime_ns:inode:mode", marked when racy at `now_ms` (root_dir.h).
std::string EncodeStamp(const FileStat& s, int64_t now_ms) {
  return MarkIfRacy(
      StrCat(TypeName(s.type), ":", s.size, ":", s.mtime_ns, ":", s.inode, ":", s.mode),
      s, now_ms);
}

// The FileStat a stamp encodes; nullopt for "" or a damaged stamp.
std::optional<FileStat> DecodeStamp(std::string_view stamp) {
  FileStat s;
  char type[16] = {};
  unsigned long long size = 0, inode = 0;
  long long mtime = 0;
  unsigned mode = 0;
  std::string text(stamp);
  if (std::sscanf(text.c_str(), "%15[a-z]:%llu:%lld:%llu:%u", type, &size, &mtime, &inode,
                  &mode) != 5) {
    return std::nullopt;
  }
  std::string t = type;
  s.type = t == "file"      ? FileStat::kFile
           : t == "dir"     ? FileStat::kDir
           : t == "symlink" ? FileStat::kSymlink
                            : FileStat::kOther;
  s.size = size;
  s.mtime_ns = mtime;
  s.inode = inode;
  s.mode = mode;
  return s;
}

RootDir::Expect ExpectFromStamp(const std::string& stamp) {
  RootDir::Expect expect;
  if (stamp.empty()) {
    expect.must_be_absent = true;
  } else {
    expect.unchanged = DecodeStamp(stamp);
  }
  return expect;
}

v1::Item BaseItem(const std::string& id, const FileStat& stat) {
  v1::Item item;
  item.set_id(id);
  engine::SetBytesField(&item, kType, TypeName(stat.type));
  engine::SetBytesField(&item, kMode, StrCat(stat.mode & 07777));
  return item;
}

uint32_t ModeOf(const v1::Item& item, uint32_t fallback) {
  std::string text = engine::BytesField(item, kMode);
  if (text.empty() || text.size() > 5) return fallback;
  uint32_t mode = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return fallback;
    mode = mode * 10 + static_cast<uint32_t>(c - '0');
  }
  return mode & 07777;
}

int64_t MtimeOf(const v1::Item& item) {
  std::string text = engine::BytesField(item, kMtime);
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + (c - '0');
  }
  return value;
}

// The reads of ChunkStream from an open file.
chunk::ChunkRead ReadFnOf(FileReader& reader) {
  return [&reader](char* out, size_t size) { return reader.Read(out, size); };
}

std::string FormatUtc(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm;
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y%m%d-%H%M%S", &tm);
  return text;
}

}  // namespace

std::string ChunkerSeed(const seal::ContentHasher& hasher) {
  return hasher.ContentDigest("ferry files connector: chunker seed v1");
}

FilesConnector::FilesConnector(FilesOptions options, const seal::ContentHasher* hasher,
                               std::string_view chunker_seed)
    : options_(std::move(options)),
      env_(options_.env != nullptr ? options_.env : Env::Default()),
      hasher_(hasher),
      chunker_(chunk::ChunkerParams::Default(), chunker_seed) {}

FilesConnector::~FilesConnector() = default;

absl::StatusOr<RootDir*> FilesConnector::Root() {
  if (root_ == nullptr) {
    FERRY_ASSIGN_OR_RETURN(root_, env_->OpenRoot(options_.root));
    assert(root_ != nullptr);
  }
  return root_.get();
}

bool FilesConnector::SameStamp(const std::string& earlier, const std::string& now) const {
  return SameStampIgnoringRace(earlier, now);
}

bool FilesConnector::DataPresent() {
  // A walk not used by a scan is dropped (it used root_, and is old by now).
  if (prefetched_.valid()) prefetched_.get();
  root_.reset();  // the folder may have been replaced or unmounted since
  return Root().ok();
}

FilesConnector::Listing FilesConnector::List(int64_t scan_ms) {
  Listing listing;
  listing.scan_ms = scan_ms;
  root_.reset();  // the folder may have been replaced or unmounted since
  if (!Root().ok()) return listing;
  listing.present = true;
  listing.status =
      root_->Walk([&](const std::string& path,
                      const FileStat& stat) { listing.visited.emplace_back(path, stat); },
                  [&](const std::string& path, const std::string& why) {
                    listing.skipped.emplace_back(listing.visited.size(), path, why);
                  },
                  options_.entries_max);
  return listing;
}

void FilesConnector::Prefetch() {
  if (prefetched_.valid()) prefetched_.get();
  // The time is taken before the walk: a stamp is judged racy against a time no
  // later than its lstat (root_dir.h, MarkIfRacy), never later.
  int64_t scan_ms = env_->NowMs();
  prefetched_ = std::async(std::launch::async, [this, scan_ms] { return List(scan_ms); });
}

// Chunks and hashes one file. The stat is taken again afterwards: a file that changed
// while it was read gives FAILED_PRECONDITION.
absl::StatusOr<v1::Item> FilesConnector::HashFile(const std::string& id,
                                                  FileStat stat) const {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, root_->OpenForRead(id));
  v1::Item item = BaseItem(id, stat);
  engine::SetBytesField(&item, kMtime, StrCat(stat.mtime_ns));
  v1::Field content;
  content.set_name(kContent);
  v1::ContentRef* ref = content.mutable_content();
  std::string ids;
  FERRY_ASSIGN_OR_RETURN(
      uint64_t size,
      chunk::ChunkStream(ReadFnOf(*reader), chunker_, [&](std::string_view chunk) {
        v1::ChunkRef* c = ref->add_chunks();
        c->set_id(hasher_->ChunkId(chunk));
        c->set_size(static_cast<uint32_t>(chunk.size()));
        ids += c->id();
        return absl::OkStatus();
      }));
  ref->set_size(size);
  ref->set_digest(hasher_->ContentDigest(ids));
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> after, root_->Stat(id));
  if (!after.has_value() || !SameFile(*after, stat) || size != stat.size) {
    return absl::FailedPreconditionError(StrCat(id, " changed while it was read"));
  }
  engine::SetField(&item, std::move(content));
  return item;
}

absl::StatusOr<IgnoreRules> FilesConnector::LoadIgnoreRules() {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> stat, root_->Stat(kIgnoreFile));
  if (!stat.has_value() || stat->type != FileStat::kFile) return rules;
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader,
                         root_->OpenForRead(kIgnoreFile));
  std::string text;
  char buffer[8192];
  for (size_t n = sizeof(buffer); n == sizeof(buffer);) {
    FERRY_ASSIGN_OR_RETURN(n, reader->Read(buffer, sizeof(buffer)));
    text.append(buffer, n);
    if (text.size() > kIgnoreFileBytesMax) {
      return absl::FailedPreconditionError(".ferryignore is larger than 1 MiB");
    }
  }
  absl::StatusOr<IgnoreRules> user = IgnoreRules::Parse(text);
  if (!user.ok()) {
    return absl::FailedPreconditionError(
        StrCat(".ferryignore: ", std::string(user.status().message())));
  }
  return IgnoreRules::Combine(rules, *user);
}

absl::Status FilesConnector::CheckNotIgnored(const std::string& id, bool is_dir) const {
  size_t start = 0;
  while (start <= id.size()) {
    size_t slash = id.find('/', start);
    std::string_view name = std::string_view(id).substr(
        start, slash == std::string::npos ? std::string::npos : slash - start);
    if (RootDir::IsTempName(name)) {
      return absl::FailedPreconditionError(StrCat(id, ": a name ferry keeps for itself"));
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (rules_.Matches(id, is_dir)) {
    return absl::FailedPreconditionError(StrCat(id, " is ignored on this device"));
  }
  return absl::OkStatus();
}

// Writes a probe file with a mixed-case temporary name and looks it up with the case
// swapped.
absl::StatusOr<bool> FilesConnector::ProbeCaseInsensitive() {
  std::string name = StrCat(".ferry-tmp-case-probe-", seal::ToHex(env_->RandomBytes(4)));
  std::string upper = name + "Aa", lower = name + "aA";
  RootDir::Expect absent;
  absent.must_be_absent = true;
  FERRY_RETURN_IF_ERROR(root_->ReplaceFile(
      upper, [](FileWriter&) { return absl::OkStatus(); }, 0600, 0, absent));
  absl::StatusOr<std::optional<FileStat>> other = root_->Stat(lower);
  absl::Status removed = root_->Remove(upper, RootDir::Expect());
  FERRY_RETURN_IF_ERROR(other.status());
  FERRY_RETURN_IF_ERROR(removed);
  return other->has_value();
}

void FilesConnector::NoteLocalName(const std::string& id) {
  if (options_.case_insensitive.value_or(false)) folded_.emplace(CaseFoldKey(id), id);
}

absl::Status FilesConnector::CheckNoFoldCollision(const std::string& id) const {
  if (!options_.case_insensitive.value_or(false)) return absl::OkStatus();
  auto it = folded_.find(CaseFoldKey(id));
  if (it != folded_.end() && it->second != id) {
    return absl::FailedPreconditionError(
        StrCat(id, " collides with ", EscapePath(it->second), " when case is ignored"));
  }
  return absl::OkStatus();
}

absl::Status FilesConnector::StartScan() {
  FERRY_ASSIGN_OR_RETURN(rules_, LoadIgnoreRules());
  folded_.clear();
  if (!options_.case_insensitive.has_value()) {
    FERRY_ASSIGN_OR_RETURN(bool insensitive, ProbeCaseInsensitive());
    options_.case_insensitive = insensitive;
  }
  return absl::OkStatus();
}

// What Apply takes from a scan: the ignore rules, whether case is ignored, and (where
// it is) every local name, which are the synced ones.
absl::StatusOr<ScanResult> FilesConnector::ScanUnchanged(
    const std::map<std::string, ItemPtr>& synced,
    const std::map<std::string, std::string>& stamps) {
  // A stamp a scan would not trust (taken while the object may still have been
  // written) is not trusted here either: a real scan reads that object again.
  for (const auto& [id, stamp] : stamps) {
    if (!stamp.empty() && stamp.back() == kRacyMark) return Scan(synced, stamps);
  }
  // A folder that is gone: a real scan, which the mass-deletion guard then reads.
  if (!DataPresent()) return Scan(synced, stamps);
  FERRY_RETURN_IF_ERROR(StartScan());
  ScanResult result;
  for (const auto& [id, item] : synced) {
    auto stamp = stamps.find(id);
    result.items.emplace(
        id, LocalItem{item, stamp != stamps.end() ? stamp->second : std::string()});
    NoteLocalName(id);
  }
  return result;
}

absl::StatusOr<ScanResult> FilesConnector::Scan(
    const std::map<std::string, ItemPtr>& synced,
    const std::map<std::string, std::string>& stamps) {
  ScanResult result;
  Listing listing = prefetched_.valid() ? prefetched_.get() : List(env_->NowMs());
  if (!listing.present) return result;  // DataPresent() says why; nothing to list
  FERRY_RETURN_IF_ERROR(listing.status);

  FERRY_RETURN_IF_ERROR(StartScan());
  const IgnoreRules& rules = rules_;
  std::vector<std::pair<std::string, FileStat>> to_hash;
  // Temporary files of ours that nothing has touched for a long time were left by a
  // crash: removed (if still unchanged) after the walk.
  std::vector<std::pair<std::string, FileStat>> stale_temps;
  // Directories ignored (by the rules, or as temporary files of ours).
  std::set<std::string, std::less<>> ignored_dirs;
  const int64_t scan_ms = listing.scan_ms;
  auto visit = [&](const std::string& path, const FileStat& stat) {
    std::string_view name = path;
    if (size_t slash = name.rfind('/'); slash != std::string_view::npos) {
      name = name.substr(slash + 1);
    }
    const bool is_dir = stat.type == FileStat::kDir;
    if (RootDir::IsTempName(name)) {
      if (options_.leftover_temps.Includes(stat, scan_ms)) {
        stale_temps.emplace_back(path, stat);
      }
      if (is_dir) ignored_dirs.insert(path);
      return;
    }
    // The walk visits a directory before what is in it, so an entry is ignored
    // when its directory was, or by its own level (IgnoreRules::MatchesOwnLevel).
    const size_t slash = path.rfind('/');
    if ((slash != std::string::npos && !ignored_dirs.empty() &&
         ignored_dirs.contains(std::string_view(path).substr(0, slash))) ||
        rules.MatchesOwnLevel(path, is_dir)) {
      if (is_dir) ignored_dirs.insert(path);
      return;
    }
    NoteLocalName(path);
    if (stat.type == FileStat::kOther) {
      result.skipped.emplace_back(path, "not a file, directory or symbolic link");
      return;
    }
    std::string stamp = EncodeStamp(stat, scan_ms);
    if (auto old = stamps.find(path);
        old != stamps.end() && StampUnchanged(old->second, stamp)) {
      if (auto item = synced.find(path); item != synced.end()) {
        result.items.emplace_hint(result.items.end(), path,
                                  LocalItem{item->second, std::move(stamp)});
        return;
      }
    }
    if (stat.type == FileStat::kFile) {
      to_hash.emplace_back(path, stat);
      return;
    }
    v1::Item fresh = BaseItem(path, stat);
    if (stat.type == FileStat::kSymlink) {
      absl::StatusOr<std::string> target = root_->ReadLink(path);
      if (!target.ok()) {
        result.skipped.emplace_back(path, std::string(target.status().message()));
        return;
      }
      engine::SetBytesField(&fresh, kTarget, *target);
      engine::SetBytesField(&fresh, kMode, "0");  // a link's own mode means nothing
    }
    result.items[path] =
        LocalItem{std::make_shared<const v1::Item>(std::move(fresh)), stamp};
  };
  auto skipped = listing.skipped.begin();
  for (size_t i = 0; i <= listing.visited.size(); ++i) {
    for (; skipped != listing.skipped.end() && std::get<0>(*skipped) == i; ++skipped) {
      result.skipped.emplace_back(std::move(std::get<1>(*skipped)),
                                  std::move(std::get<2>(*skipped)));
    }
    if (i < listing.visited.size())
      visit(listing.visited[i].first, listing.visited[i].second);
  }
  listing.visited = {};

  for (const auto& [path, stat] : stale_temps) {
    RootDir::Expect unchanged;
    unchanged.unchanged = stat;
    // Best effort: one that cannot be removed now is tried again at the next scan.
    (void)root_->Remove(path, unchanged);
  }

  // Changed files are read and hashed on every core.
  std::vector<absl::StatusOr<v1::Item>> hashed(to_hash.size(), absl::UnknownError(""));
  std::atomic<size_t> next{0};
  int threads = options_.hash_threads > 0
                    ? options_.hash_threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads =
      static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), to_hash.size()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < to_hash.size(); i = next++) {
        hashed[i] = HashFile(to_hash[i].first, to_hash[i].second);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  for (size_t i = 0; i < to_hash.size(); ++i) {
    const std::string& path = to_hash[i].first;
    if (hashed[i].ok()) {
      result.bytes_read += to_hash[i].second.size;
      result.items[path] =
          LocalItem{std::make_shared<const v1::Item>(*std::move(hashed[i])),
                    EncodeStamp(to_hash[i].second, scan_ms)};
      continue;
    }
    // A file being written or unreadable now: its synced version stands for it this
    // time (so it is not taken for deleted), and the next scan reads it again.
    auto item = synced.find(path);
    if (item != synced.end()) result.items[path] = LocalItem{item->second, ""};
    result.skipped.emplace_back(path, std::string(hashed[i].status().message()));
  }
  return result;
}

absl::Status FilesConnector::ReadContent(
    const v1::Item& item, const std::string& field, const ContentPart& part,
    const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>& sink) {
  FERRY_ASSIGN_OR_RETURN(RootDir * root, Root());
  const v1::Field* content = engine::FindField(item, field);
  if (content == nullptr || !content->has_content()) {
    return absl::InvalidArgumentError(StrCat(item.id(), " has no content field ", field));
  }
  const v1::ContentRef& ref = content->content();
  if (part.begin < 0 || part.begin > part.end || part.end > ref.chunks_size()) {
    return absl::InvalidArgumentError(StrCat(item.id(), ": chunks [", part.begin, ", ",
                                             part.end, ") of ", ref.chunks_size()));
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader,
                         root->OpenForRead(item.id()));
  const auto changed = [&] {
    return absl::FailedPreconditionError(StrCat(item.id(), " changed since the scan"));
  };
  // The file is read in the scan's cuts, not chunked again: the bytes are the item's
  // exactly when each piece hashes to its id and the file ends after the last. Only
  // the part's own chunks are looked at, so reading a large content in parts costs
  // no more than reading it whole.
  size_t largest = 1;
  for (int i = part.begin; i < part.end; ++i) {
    if (ref.chunks(i).size() > kChunkBytesMax) return changed();
    largest = std::max<size_t>(largest, ref.chunks(i).size());
  }
  auto buffer = std::make_unique_for_overwrite<char[]>(largest);
  uint64_t offset = part.offset;
  for (int i = part.begin; i < part.end; ++i) {
    const v1::ChunkRef& chunk = ref.chunks(i);
    FERRY_ASSIGN_OR_RETURN(size_t n, reader->ReadAt(offset, buffer.get(), chunk.size()));
    const std::string_view piece(buffer.get(), n);
    if (n != chunk.size() || hasher_->ChunkId(piece) != chunk.id()) return changed();
    FERRY_RETURN_IF_ERROR(sink(chunk, piece));
    offset += n;
  }
  if (part.end == ref.chunks_size()) {
    if (offset != ref.size()) return changed();
    FERRY_ASSIGN_OR_RETURN(size_t more, reader->ReadAt(offset, buffer.get(), 1));
    if (more != 0) return changed();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FilesConnector::ReadRange(const std::string& id,
                                                      const std::string& field,
                                                      uint64_t offset, uint32_t size) {
  if (field != kContent) return absl::NotFoundError("not a file content field");
  FERRY_ASSIGN_OR_RETURN(RootDir * root, Root());
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<FileReader> reader, root->OpenForRead(id));
  std::string data(size, '\0');
  FERRY_ASSIGN_OR_RETURN(size_t done, reader->ReadAt(offset, data.data(), size));
  if (done < size) return absl::NotFoundError(StrCat(id, ": short read"));
  return data;
}

absl::Status FilesConnector::WriteContent(FileWriter& out, const v1::ContentRef& content,
                                          ChunkSource* chunks) const {
  int next = 0;
  while (next < content.chunks_size()) {
    std::vector<v1::ChunkRef> window;
    uint64_t bytes = 0;
    while (next < content.chunks_size() && window.size() < kWriteWindowChunksMax &&
           (window.empty() || bytes < kWriteWindowBytesMax)) {
      bytes += content.chunks(next).size();
      window.push_back(content.chunks(next++));
    }
    FERRY_ASSIGN_OR_RETURN(std::vector<std::string> data, chunks->Fetch(window));
    FERRY_RETURN_IF_ERROR(out.AppendAll(data));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FilesConnector::Apply(const std::string& id,
                                                  const std::string& expected_stamp,
                                                  const v1::Item* after,
                                                  ChunkSource* chunks) {
  return ApplyOne(id, expected_stamp, after, chunks, /*sync_dirs=*/true);
}

absl::StatusOr<std::string> FilesConnector::ApplyOne(const std::string& id,
                                                     const std::string& expected_stamp,
                                                     const v1::Item* after,
                                                     ChunkSource* chunks,
                                                     bool sync_dirs) {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(id));
  FERRY_ASSIGN_OR_RETURN(RootDir * root, Root());
  RootDir::Expect expect = ExpectFromStamp(expected_stamp);
  if (after != nullptr) {
    FERRY_RETURN_IF_ERROR(
        CheckNotIgnored(id, engine::BytesField(*after, kType) == "dir"));
    FERRY_RETURN_IF_ERROR(CheckNoFoldCollision(id));
    NoteLocalName(id);
  }
  if (after == nullptr) {
    FERRY_RETURN_IF_ERROR(root->Remove(id, expect));
    return std::string();
  }
  std::string type = engine::BytesField(*after, kType);
  // A directory that becomes a file or link, or the other way round: the old one is
  // removed first (a directory only when empty: FAILED_PRECONDITION otherwise).
  const std::optional<FileStat> now = expect.unchanged;
  if (now.has_value() && (now->type == FileStat::kDir) != (type == "dir")) {
    FERRY_RETURN_IF_ERROR(root->Remove(id, expect));
    expect = RootDir::Expect();
    expect.must_be_absent = true;
  }
  if (type == "dir") {
    if (expect.unchanged.has_value()) {
      // A directory that was removed, replaced or had its mode changed since it was
      // scanned (or, under SyncOptions::assume_unchanged, synced) is a local change:
      // not undone here. Its size and mtime change with its entries: not compared.
      FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> current, root->Stat(id));
      if (!current.has_value() || current->type != FileStat::kDir ||
          current->inode != expect.unchanged->inode ||
          current->mode != expect.unchanged->mode) {
        return absl::AbortedError(StrCat(id, " changed since scan"));
      }
    }
    const uint32_t mode = ModeOf(*after, 0755);
    FERRY_RETURN_IF_ERROR(sync_dirs ? root->MakeDir(id, mode)
                                    : root->MakeDirUnsynced(id, mode));
  } else if (type == "symlink") {
    const std::string target = engine::BytesField(*after, kTarget);
    FERRY_RETURN_IF_ERROR(sync_dirs ? root->ReplaceSymlink(id, target, expect)
                                    : root->ReplaceSymlinkUnsynced(id, target, expect));
  } else if (type == "file") {
    const v1::Field* content = engine::FindField(*after, kContent);
    if (content == nullptr || !content->has_content()) {
      return absl::DataLossError(StrCat("file item ", id, " has no content"));
    }
    FERRY_RETURN_IF_ERROR(root->ReplaceFile(
        id,
        [&](FileWriter& out) { return WriteContent(out, content->content(), chunks); },
        ModeOf(*after, 0644), MtimeOf(*after), expect));
  } else {
    return absl::DataLossError(StrCat("item ", id, " has unknown type '", type, "'"));
  }
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> stat, root->Stat(id));
  if (!stat.has_value())
    return absl::AbortedError(StrCat(id, " vanished after it was written"));
  return EncodeStamp(*stat, env_->NowMs());
}

// Files are written in two phases so the batch costs two flushes (see
// RootDir::WriteTemp); everything else is applied in order as it comes, directories
// and symbolic links made durable by the batch's first flush.
std::vector<absl::StatusOr<std::string>> FilesConnector::ApplyBatch(
    const std::vector<ApplyRequest>& requests, ChunkSource* chunks) {
  std::vector<absl::StatusOr<std::string>> results(requests.size(),
                                                   absl::UnknownError("not applied"));
  absl::StatusOr<RootDir*> root = Root();
  if (!root.ok())
    return std::vector<absl::StatusOr<std::string>>(requests.size(), root.status());
  std::vector<std::pair<size_t, std::unique_ptr<RootDir::PendingFile>>> pending;
  // Directories made, and parents made by WriteTemp (even when it then failed), are
  // not flushed yet: the batch ends with a flush whenever it tried either.
  bool unflushed = false;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ApplyRequest& r = requests[i];
    const std::string type =
        r.after != nullptr ? engine::BytesField(*r.after, kType) : std::string();
    std::optional<FileStat> was = DecodeStamp(r.expected_stamp);
    if (type != "file" || (was.has_value() && was->type == FileStat::kDir)) {
      // Directories and links are flushed by the batch's one flush, not each its own
      // (/usr/share/doc alone holds hundreds of links: a journal commit each).
      const bool batched = type == "dir" || type == "symlink";
      results[i] = ApplyOne(r.id, r.expected_stamp, r.after, chunks,
                            /*sync_dirs=*/!batched);
      unflushed |= batched;
      continue;
    }
    absl::Status valid = ValidateRelativePath(r.id);
    if (valid.ok()) valid = CheckNotIgnored(r.id, false);
    if (valid.ok()) valid = CheckNoFoldCollision(r.id);
    if (valid.ok()) NoteLocalName(r.id);
    const v1::Field* content = engine::FindField(*r.after, kContent);
    if (valid.ok() && (content == nullptr || !content->has_content())) {
      valid = absl::DataLossError(StrCat("file item ", r.id, " has no content"));
    }
    if (!valid.ok()) {
      results[i] = valid;
      continue;
    }
    unflushed = true;
    absl::StatusOr<std::unique_ptr<RootDir::PendingFile>> written = (*root)->WriteTemp(
        r.id,
        [&](FileWriter& out) { return WriteContent(out, content->content(), chunks); },
        ModeOf(*r.after, 0644), MtimeOf(*r.after), ExpectFromStamp(r.expected_stamp));
    if (!written.ok()) {
      results[i] = written.status();
      continue;
    }
    pending.emplace_back(i, *std::move(written));
  }
  if (!unflushed) return results;
  absl::Status synced = (*root)->SyncAll();
  if (!synced.ok()) {
    // Nothing written in this batch is known durable: parents made unflushed may
    // hold any of it.
    for (auto& result : results) {
      if (result.ok()) result = synced;
    }
  }
  if (pending.empty()) return results;
  for (auto& [i, file] : pending) {
    const ApplyRequest& r = requests[i];
    if (!synced.ok()) {
      results[i] = synced;
      continue;
    }
    absl::StatusOr<std::optional<FileStat>> stat =
        (*root)->CommitTemp(*file, ExpectFromStamp(r.expected_stamp));
    if (!stat.ok()) {
      results[i] = stat.status();
    } else if (!stat->has_value()) {
      results[i] = absl::AbortedError(StrCat(r.id, " vanished after it was written"));
    } else {
      results[i] = EncodeStamp(**stat, env_->NowMs());
    }
  }
  absl::Status renamed = (*root)->SyncAll();
  if (!renamed.ok()) {
    for (auto& [i, file] : pending) {
      if (results[i].ok()) results[i] = renamed;
    }
  }
  return results;
}

absl::StatusOr<std::string> FilesConnector::Move(const std::string& from,
                                                 const std::string& from_stamp,
                                                 const std::string& to) {
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(from));
  FERRY_RETURN_IF_ERROR(ValidateRelativePath(to));
  FERRY_RETURN_IF_ERROR(CheckNotIgnored(to, false));
  if (CaseFoldKey(from) != CaseFoldKey(to)) {  // a change of case only is fine
    FERRY_RETURN_IF_ERROR(CheckNoFoldCollision(to));
  }
  FERRY_ASSIGN_OR_RETURN(RootDir * root, Root());
  RootDir::Expect absent;
  absent.must_be_absent = true;
  FERRY_RETURN_IF_ERROR(root->Rename(from, to, ExpectFromStamp(from_stamp), absent));
  if (options_.case_insensitive.value_or(false)) folded_.erase(CaseFoldKey(from));
  NoteLocalName(to);
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> stat, root->Stat(to));
  if (!stat.has_value())
    return absl::AbortedError(StrCat(to, " vanished after the move"));
  return EncodeStamp(*stat, env_->NowMs());
}

std::string FilesConnector::ConflictCopyId(const std::string& id,
                                           const std::string& device, int64_t time_ms) {
  size_t slash = id.rfind('/');
  std::string dir = slash == std::string::npos ? "" : id.substr(0, slash + 1);
  std::string name = slash == std::string::npos ? id : id.substr(slash + 1);
  size_t dot = name.rfind('.');
  if (dot == 0 || dot == std::string::npos) dot = name.size();  // ".bashrc", "Makefile"
  std::string stem = name.substr(0, dot), ext = name.substr(dot);
  std::string base = StrCat(dir, stem, ".conflict-", device, "-", FormatUtc(time_ms));
  for (int attempt = 1; attempt <= kConflictNameAttemptsMax; ++attempt) {
    std::string candidate = attempt == 1 ? base + ext : StrCat(base, "-", attempt, ext);
    absl::StatusOr<RootDir*> root = Root();
    if (!root.ok()) return candidate;
    absl::StatusOr<std::optional<FileStat>> stat = (*root)->Stat(candidate);
    if (stat.ok() && !stat->has_value()) return candidate;
  }
  return StrCat(base, "-", seal::ToHex(env_->RandomBytes(4)), ext);
}

int64_t FilesConnector::EditTimeMs(const v1::Item& item) {
  return MtimeOf(item) / 1000000;
}

}  // namespace ferry::files
