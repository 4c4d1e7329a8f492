#include "src/connectors/pim/records_connector.h"

#include <cassert>
#include <cstdio>

#include "src/connectors/files/root_dir.h"
#include "src/connectors/pim/content_line.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::pim {
namespace {

using files::FileStat;
using files::RootDir;

// Prefix of the ids of files that have no UID.
constexpr std::string_view kFileIdPrefix = "file:";
// Longest file name this connector makes, extension included (most file systems allow
// 255 bytes).
constexpr size_t kFileNameBytesMax = 200;

// A stamp is the file name, a NUL, then "size:mtime_ns:inode:mode" of its lstat, so
// that the shadow knows which file holds an item without reading any.
// It is marked when racy at `now_ms` (root_dir.h).
std::string EncodeStamp(const std::string& file, const FileStat& stat, int64_t now_ms) {
  return files::MarkIfRacy(StrCat(file, std::string_view("\0", 1), stat.size, ":",
                                  stat.mtime_ns, ":", stat.inode, ":", stat.mode),
                           stat, now_ms);
}

struct Stamp {
  std::string file;
  FileStat stat;
};

std::optional<Stamp> DecodeStamp(std::string_view stamp) {
  size_t nul = stamp.find('\0');
  if (nul == std::string_view::npos || nul == 0) return std::nullopt;
  Stamp out;
  out.file = std::string(stamp.substr(0, nul));
  std::string rest(stamp.substr(nul + 1));
  unsigned long long size = 0, inode = 0;
  long long mtime = 0;
  unsigned mode = 0;
  if (std::sscanf(rest.c_str(), "%llu:%lld:%llu:%u", &size, &mtime, &inode, &mode) != 4) {
    return std::nullopt;
  }
  out.stat.type = FileStat::kFile;
  out.stat.size = size;
  out.stat.mtime_ns = mtime;
  out.stat.inode = inode;
  out.stat.mode = mode;
  return out;
}

bool HasExtension(std::string_view name, std::string_view ext) {
  if (name.size() <= ext.size()) return false;
  std::string_view tail = name.substr(name.size() - ext.size());
  for (size_t i = 0; i < ext.size(); ++i) {
    char c = tail[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != ext[i]) return false;
  }
  return true;
}

// A name other programs and file systems take as it is: letters, digits and a few
// marks, not starting with a dot.
bool PortableName(std::string_view name) {
  if (name.empty() || name.size() > kFileNameBytesMax - 4 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '@' ||
              c == '+' || c == '=';
    if (!ok) return false;
  }
  return true;
}

// A file name from the wire ("file:<name>" ids): one path component, not hidden, no
// control characters, valid UTF-8.
bool SafeStem(std::string_view name) {
  if (name.empty() || name.size() > kFileNameBytesMax - 4 || name[0] == '.') return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\') return false;
  }
  return IsValidUtf8(name);
}

absl::StatusOr<std::string> ReadWhole(const RootDir& root, const std::string& name,
                                      size_t max_bytes) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<files::FileReader> reader,
                         root.OpenForRead(name));
  std::string text;
  char buffer[16384];
  for (size_t n = sizeof(buffer); n == sizeof(buffer);) {
    FERRY_ASSIGN_OR_RETURN(n, reader->Read(buffer, sizeof(buffer)));
    text.append(buffer, n);
    if (text.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          StrCat("larger than ", max_bytes >> 20, " MiB"));
    }
  }
  return text;
}

RootDir::Expect ExpectFromStamp(const std::string& stamp) {
  RootDir::Expect expect;
  std::optional<Stamp> decoded = DecodeStamp(stamp);
  if (decoded.has_value()) {
    expect.unchanged = decoded->stat;
  } else {
    expect.must_be_absent = true;
  }
  return expect;
}

v1::Item ItemOf(const std::string& id, const FieldMap& fields) {
  v1::Item item;
  item.set_id(id);
  item.mutable_fields()->Reserve(static_cast<int>(fields.size()));
  for (const auto& [name, value] : fields) {
    v1::Field* f = item.add_fields();
    f->set_name(name);
    f->set_bytes(value);
  }
  return item;
}

absl::StatusOr<FieldMap> FieldsOf(const v1::Item& item) {
  FieldMap fields;
  for (const v1::Field& f : item.fields()) {
    if (!f.has_bytes() && f.has_content()) {
      return absl::InvalidArgumentError(
          StrCat("record field ", f.name(), " holds chunked content"));
    }
    fields.emplace_hint(fields.end(), f.name(), f.bytes());
  }
  return fields;
}

}  // namespace

RecordsConnector::RecordsConnector(RecordsOptions options)
    : options_(std::move(options)),
      env_(options_.env != nullptr ? options_.env : Env::Default()) {}

RecordsConnector::~RecordsConnector() = default;

std::string_view RecordsConnector::Name() const {
  return options_.kind == RecordKind::kContact ? "contacts/1" : "calendar/1";
}

std::string_view RecordsConnector::Extension() const {
  return options_.kind == RecordKind::kContact ? ".vcf" : ".ics";
}

absl::StatusOr<RootDir*> RecordsConnector::Root() {
  if (root_ == nullptr) {
    FERRY_ASSIGN_OR_RETURN(root_, env_->OpenRoot(options_.root));
    assert(root_ != nullptr);
  }
  return root_.get();
}

bool RecordsConnector::SameStamp(const std::string& earlier,
                                 const std::string& now) const {
  return files::SameStampIgnoringRace(earlier, now);
}

bool RecordsConnector::DataPresent() {
  root_.reset();
  return Root().ok();
}

std::string RecordsConnector::NewFileName(const std::string& id) const {
  std::string_view ext = Extension();
  if (id.starts_with(kFileIdPrefix)) {
    return StrCat(id.substr(kFileIdPrefix.size()), ext);
  }
  if (PortableName(id)) return StrCat(id, ext);
  return StrCat("ferry-", Hex64(Fnv1a64(id)), ext);
}

absl::StatusOr<ScanResult> RecordsConnector::Scan(
    const std::map<std::string, ItemPtr>& synced,
    const std::map<std::string, std::string>& stamps) {
  ScanResult result;
  file_of_.clear();
  edit_ms_.clear();
  malformed_.clear();
  root_.reset();
  absl::StatusOr<RootDir*> root = Root();
  if (!root.ok()) return result;  // DataPresent() says why

  // Which synced id each file held, from the stamps.
  std::map<std::string, std::pair<std::string, std::string>> synced_by_file;
  for (const auto& [id, stamp] : stamps) {
    std::optional<Stamp> decoded = DecodeStamp(stamp);
    if (decoded.has_value()) synced_by_file[decoded->file] = {id, stamp};
  }
  std::vector<std::pair<std::string, FileStat>> files, stale_temps;
  const int64_t scan_ms = env_->NowMs();
  std::string_view ext = Extension();
  FERRY_RETURN_IF_ERROR(root_->Walk(
      [&](const std::string& path, const FileStat& stat) {
        if (path.find('/') != std::string::npos) return;  // a vdir is flat
        if (RootDir::IsTempName(path)) {
          if (options_.leftover_temps.Includes(stat, scan_ms)) {
            stale_temps.emplace_back(path, stat);
          }
          return;
        }
        if (path[0] == '.' || !HasExtension(path, ext)) return;
        if (!IsValidUtf8(path)) {
          result.skipped.emplace_back(path, "the file name is not valid UTF-8");
          return;
        }
        if (stat.type != FileStat::kFile) {
          result.skipped.emplace_back(path, "not a regular file");
          return;
        }
        files.emplace_back(path, stat);
      },
      [&](const std::string& path, const std::string& why) {
        if (path.find('/') == std::string::npos) result.skipped.emplace_back(path, why);
      },
      options_.files_max));
  for (const auto& [path, stat] : stale_temps) {
    RootDir::Expect unchanged;
    unchanged.unchanged = stat;
    (void)root_->Remove(path, unchanged);  // best effort; tried again next scan
  }

  // The file each id was found in, to report a UID held by two files.
  std::map<std::string, std::string> found_in;
  auto add = [&](const std::string& id, const std::string& file, LocalItem local,
                 int64_t mtime_ns) {
    auto [it, inserted] = found_in.emplace(id, file);
    if (!inserted) {
      // Two files, one UID: the one synced before keeps the id; the other is skipped.
      auto before = synced_by_file.find(file);
      bool this_synced = before != synced_by_file.end() && before->second.first == id;
      std::string other = it->second;
      if (!this_synced) {
        result.skipped.emplace_back(file, StrCat("UID ", id, " is also in ", other));
        return;
      }
      result.skipped.emplace_back(other, StrCat("UID ", id, " is also in ", file));
      it->second = file;
    }
    file_of_[id] = file;
    edit_ms_[id] = mtime_ns / 1000000;
    result.items[id] = std::move(local);
  };
  for (const auto& [file, stat] : files) {
    std::string stamp = EncodeStamp(file, stat, scan_ms);
    auto before = synced_by_file.find(file);
    if (before != synced_by_file.end() &&
        files::StampUnchanged(before->second.second, stamp)) {
      auto item = synced.find(before->second.first);
      if (item != synced.end()) {
        add(item->first, file, LocalItem{item->second, stamp}, stat.mtime_ns);
        continue;
      }
    }
    absl::StatusOr<std::string> text = ReadWhole(*root_, file, kPimFileBytesMax);
    absl::StatusOr<Record> record = text.ok() ? ParseRecord(options_.kind, *text)
                                              : absl::StatusOr<Record>(text.status());
    if (!record.ok()) {
      malformed_.insert(file);
      result.skipped.emplace_back(file, std::string(record.status().message()));
      // Its synced version stands for it, so it is not taken for deleted; nothing
      // is written over it (Apply refuses) until it parses again.
      if (before != synced_by_file.end()) {
        auto item = synced.find(before->second.first);
        if (item != synced.end()) {
          file_of_[item->first] = file;
          result.items[item->first] = LocalItem{item->second, ""};
        }
      }
      continue;
    }
    result.bytes_read += text->size();
    std::string id;
    if (!record->uid.empty() && IsValidUtf8(record->uid) &&
        !record->uid.starts_with(kFileIdPrefix)) {
      id = record->uid;
    } else {
      id = StrCat(kFileIdPrefix, file.substr(0, file.size() - ext.size()));
    }
    add(id, file,
        LocalItem{std::make_shared<const v1::Item>(ItemOf(id, record->fields)), stamp},
        stat.mtime_ns);
  }
  return result;
}

absl::Status RecordsConnector::ReadContent(
    const v1::Item& item, const std::string& field, const ContentPart&,
    const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>&) {
  return absl::FailedPreconditionError(
      StrCat("record ", item.id(), " has no content field ", field));
}

absl::StatusOr<std::string> RecordsConnector::ReadRange(const std::string& id,
                                                        const std::string& field,
                                                        uint64_t, uint32_t) {
  return absl::NotFoundError(StrCat("record ", id, " has no content field ", field));
}

absl::StatusOr<std::string> RecordsConnector::Render(const v1::Item& item,
                                                     const std::string& file) const {
  FERRY_ASSIGN_OR_RETURN(FieldMap fields, FieldsOf(item));
  FERRY_ASSIGN_OR_RETURN(std::optional<FileStat> stat, root_->Stat(file));
  if (!stat.has_value()) return SerializeRecord(options_.kind, fields);
  FERRY_ASSIGN_OR_RETURN(std::string original, ReadWhole(*root_, file, kPimFileBytesMax));
  absl::StatusOr<std::string> rewritten = RewriteRecord(options_.kind, original, fields);
  if (!rewritten.ok()) {
    return absl::FailedPreconditionError(StrCat(file, " does not parse (",
                                                rewritten.status().message(),
                                                "); it is left as it is"));
  }
  return rewritten;
}

absl::StatusOr<std::string> RecordsConnector::Apply(const std::string& id,
                                                    const std::string& expected_stamp,
                                                    const v1::Item* after,
                                                    ChunkSource* chunks) {
  std::vector<absl::StatusOr<std::string>> results =
      ApplyBatch({ApplyRequest{id, expected_stamp, after}}, chunks);
  return std::move(results[0]);
}

std::vector<absl::StatusOr<std::string>> RecordsConnector::ApplyBatch(
    const std::vector<ApplyRequest>& requests, ChunkSource*) {
  std::vector<absl::StatusOr<std::string>> results(requests.size(),
                                                   absl::UnknownError("not applied"));
  absl::StatusOr<RootDir*> root = Root();
  if (!root.ok()) {
    return std::vector<absl::StatusOr<std::string>>(requests.size(), root.status());
  }
  // Writes go as a batch: every new file written beside its target, one flush, the
  // renames, one more flush.
  struct Pending {
    size_t index;
    std::string file;
    std::unique_ptr<RootDir::PendingFile> temp;
  };
  std::vector<Pending> pending;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ApplyRequest& r = requests[i];
    auto known = file_of_.find(r.id);
    std::string file;
    if (known != file_of_.end()) {
      file = known->second;
    } else {
      if (r.id.starts_with(kFileIdPrefix) &&
          !SafeStem(std::string_view(r.id).substr(kFileIdPrefix.size()))) {
        results[i] = absl::InvalidArgumentError(
            StrCat("record id ", r.id, " does not make a safe file name"));
        continue;
      }
      file = NewFileName(r.id);
    }
    if (malformed_.contains(file)) {
      results[i] = absl::FailedPreconditionError(
          StrCat(file, " does not parse; it is left as it is"));
      continue;
    }
    RootDir::Expect expect = ExpectFromStamp(r.expected_stamp);
    if (r.after == nullptr) {
      absl::Status removed = root_->Remove(file, expect);
      if (removed.ok()) {
        file_of_.erase(r.id);
        results[i] = std::string();
      } else {
        results[i] = removed;
      }
      continue;
    }
    if (r.after->id() != r.id) {
      results[i] = absl::InvalidArgumentError(StrCat("record ", r.id, " has another id"));
      continue;
    }
    absl::StatusOr<std::string> text = Render(*r.after, file);
    if (!text.ok()) {
      results[i] = text.status();
      continue;
    }
    absl::StatusOr<std::unique_ptr<RootDir::PendingFile>> temp = root_->WriteTemp(
        file, [&](files::FileWriter& out) { return out.Append(*text); }, 0644,
        env_->NowMs() * int64_t{1000000}, expect);
    if (!temp.ok()) {
      results[i] = temp.status();
      continue;
    }
    pending.push_back({i, file, *std::move(temp)});
  }
  if (pending.empty()) return results;
  absl::Status synced = root_->SyncAll();
  for (Pending& p : pending) {
    const ApplyRequest& r = requests[p.index];
    if (!synced.ok()) {
      results[p.index] = synced;
      continue;
    }
    absl::StatusOr<std::optional<FileStat>> stat =
        root_->CommitTemp(*p.temp, ExpectFromStamp(r.expected_stamp));
    if (!stat.ok()) {
      results[p.index] = stat.status();
    } else if (!stat->has_value()) {
      results[p.index] =
          absl::AbortedError(StrCat(p.file, " vanished after it was written"));
    } else {
      file_of_[r.id] = p.file;
      edit_ms_[r.id] = (*stat)->mtime_ns / 1000000;
      results[p.index] = EncodeStamp(p.file, **stat, env_->NowMs());
    }
  }
  absl::Status renamed = root_->SyncAll();
  if (!renamed.ok()) {
    for (Pending& p : pending) {
      if (results[p.index].ok()) results[p.index] = renamed;
    }
  }
  return results;
}

absl::StatusOr<std::string> RecordsConnector::Move(const std::string& from,
                                                   const std::string&,
                                                   const std::string& to) {
  // Records are never moved: an item's id is its UID, kept in the file.
  return absl::FailedPreconditionError(
      StrCat("records are not renamed (", from, " to ", to, ")"));
}

std::string RecordsConnector::ConflictCopyId(const std::string& id,
                                             const std::string& device, int64_t time_ms) {
  return StrCat(id, "-conflict-", device, "-", time_ms);
}

int64_t RecordsConnector::EditTimeMs(const v1::Item& item) {
  auto it = edit_ms_.find(item.id());
  return it == edit_ms_.end() ? 0 : it->second;
}

std::optional<v1::Field> RecordsConnector::MergeFieldValues(std::string_view name,
                                                            const v1::Field& ours,
                                                            const v1::Field& theirs) {
  if (!IsBookkeepingField(name) || !ours.has_bytes() || !theirs.has_bytes()) {
    return std::nullopt;
  }
  v1::Field merged;
  merged.set_name(std::string(name));
  merged.set_bytes(MergeBookkeeping(name, ours.bytes(), theirs.bytes()));
  return merged;
}

}  // namespace ferry::pim
