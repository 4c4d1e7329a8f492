#include "src/connectors/files/root_dir.h"

#include "src/connectors/files/disk_root_dir.h"
#include "src/connectors/files/path_rules.h"
#include "src/core/strings.h"

namespace ferry::files {

bool SameFile(const FileStat& a, const FileStat& b) {
  return a.type == b.type && a.size == b.size && a.mtime_ns == b.mtime_ns &&
         a.inode == b.inode && a.mode == b.mode;
}

std::string MarkIfRacy(std::string stamp, const FileStat& stat, int64_t now_ms) {
  if (stat.mtime_ns / 1000000 > now_ms - kRacyWindowMs) stamp += kRacyMark;
  return stamp;
}

bool StampUnchanged(const std::string& old, const std::string& fresh) {
  return old == fresh && !old.empty() && old.back() != kRacyMark;
}

bool SameStampIgnoringRace(std::string_view a, std::string_view b) {
  if (a.ends_with(kRacyMark)) a.remove_suffix(1);
  if (b.ends_with(kRacyMark)) b.remove_suffix(1);
  return !a.empty() && a == b;
}

absl::StatusOr<std::unique_ptr<RootDir>> RootDir::Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<DiskRootDir>> disk = DiskRootDir::Open(path);
  if (!disk.ok()) return disk.status();
  return std::unique_ptr<RootDir>(std::move(*disk));
}

bool RootDir::IsTempName(std::string_view name) {
  return name.starts_with(kTempNamePrefix);
}

absl::Status ValidateExpect(const RootDir::Expect& expect) {
  if (expect.must_be_absent && expect.unchanged.has_value()) {
    return absl::InvalidArgumentError("Expect: both must_be_absent and unchanged set");
  }
  return absl::OkStatus();
}

absl::Status ValidateMode(uint32_t mode) {
  if ((mode & ~uint32_t{07777}) != 0) {
    return absl::InvalidArgumentError(StrCat("mode ", mode, " has bits beyond 07777"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSymlinkTarget(std::string_view rel, std::string_view target) {
  if (target.empty() || target.find('\0') != std::string_view::npos ||
      target.size() > kSymlinkTargetBytesMax) {
    return absl::InvalidArgumentError(
        StrCat("symbolic link ", rel, ": invalid target \"", EscapePath(target), "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckExpect(const RootDir::Expect& expect,
                         const std::optional<FileStat>& current, std::string_view rel) {
  if (expect.must_be_absent && current.has_value()) {
    return absl::AbortedError(StrCat(rel, " changed since scan: it exists"));
  }
  if (expect.unchanged.has_value() &&
      (!current.has_value() || !SameFile(*current, *expect.unchanged))) {
    return absl::AbortedError(StrCat(rel, " changed since scan"));
  }
  return absl::OkStatus();
}

absl::Status CheckNotIntoItself(std::string_view from, std::string_view to) {
  if (to.size() > from.size() && to.starts_with(from) && to[from.size()] == '/') {
    return absl::InvalidArgumentError(StrCat("rename ", from, " into itself (", to, ")"));
  }
  return absl::OkStatus();
}

std::string TempName(uint64_t bits) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name(kTempNamePrefix);
  for (int shift = 60; shift >= 0; shift -= 4) {
    name.push_back(kHex[(bits >> shift) & 0xF]);
  }
  return name;
}

}  // namespace ferry::files
