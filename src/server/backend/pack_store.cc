#include "src/server/backend/pack_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "src/core/file_util.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::server {
namespace {

constexpr char kPackPrefix[] = "pack-";
constexpr size_t kRecordHeaderBytes = 8;
// Ids are chunk ids (32 bytes); anything longer in a record means damage.
constexpr uint32_t kRecordIdBytesMax = 255;

void PutU32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetU32(const char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

absl::Status WriteAll(int fd, const std::string& data, uint64_t offset,
                      const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(int fd, char* out, size_t size, uint64_t offset,
                     const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0)
      return absl::DataLossError(StrCat(path, " is shorter than its index says"));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackStore>> PackStore::Open(const std::string& dir) {
  FERRY_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  std::unique_ptr<PackStore> store(new PackStore(dir));
  // Appends go to the newest pack.
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir", dir);
  uint32_t newest = 0;
  for (struct dirent* e; (e = ::readdir(d)) != nullptr;) {
    unsigned number = 0;
    char extra = 0;
    if (std::sscanf(e->d_name, "pack-%8u%c", &number, &extra) == 1 && number > newest) {
      newest = number;
    }
  }
  ::closedir(d);
  store->current_ = newest == 0 ? 1 : newest;
  return store;
}

PackStore::~PackStore() {
  if (current_fd_ >= 0) ::close(current_fd_);
  for (auto& [pack, fd] : read_fds_) ::close(fd);
}

std::string PackStore::PackPath(uint32_t pack) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%s%08u", kPackPrefix, pack);
  return StrCat(dir_, "/", name);
}

absl::StatusOr<std::vector<PackLocation>> PackStore::Append(
    const std::vector<std::pair<std::string_view, std::string_view>>& records) {
  std::lock_guard lock(append_mu_);
  if (current_fd_ >= 0 && current_size_ >= kPackBytesTarget) {
    ::close(current_fd_);
    current_fd_ = -1;
    ++current_;
  }
  if (current_fd_ < 0) {
    std::string path = PackPath(current_);
    bool existed = FileExists(path);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return ErrnoStatus(errno, "open", path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "stat", path);
    }
    // A new pack's name must be durable before anything refers to it.
    if (!existed) {
      absl::Status synced = SyncDir(dir_);
      if (!synced.ok()) {
        ::close(fd);
        return synced;
      }
    }
    current_fd_ = fd;
    current_size_ = static_cast<uint64_t>(st.st_size);
  }
  std::string buffer;
  size_t total = 0;
  for (const auto& [id, data] : records)
    total += kRecordHeaderBytes + id.size() + data.size();
  buffer.reserve(total);
  std::vector<PackLocation> out;
  out.reserve(records.size());
  for (const auto& [id, data] : records) {
    if (id.size() > kRecordIdBytesMax) {
      return absl::InvalidArgumentError("pack record id too long");
    }
    char header[kRecordHeaderBytes];
    PutU32(header, static_cast<uint32_t>(id.size()));
    PutU32(header + 4, static_cast<uint32_t>(data.size()));
    buffer.append(header, sizeof(header));
    buffer.append(id);
    out.push_back(
        {current_, current_size_ + buffer.size(), static_cast<uint32_t>(data.size())});
    buffer.append(data);
  }
  std::string path = PackPath(current_);
  absl::Status written = WriteAll(current_fd_, buffer, current_size_, path);
  if (written.ok() && ::fdatasync(current_fd_) != 0) {
    written = ErrnoStatus(errno, "fdatasync", path);
  }
  if (!written.ok()) {
    // Nothing refers to the bytes of a failed append. They are cut off, so that a
    // write that failed on a full disk gives its space back: otherwise each failure
    // would keep what it managed to write, and a retry once some space is freed could
    // find it taken again. When they cannot be cut off, the next append starts after
    // them; they may be in the file or not.
    if (::ftruncate(current_fd_, static_cast<off_t>(current_size_)) != 0) {
      struct stat st;
      if (::fstat(current_fd_, &st) == 0) {
        current_size_ =
            std::max<uint64_t>(current_size_, static_cast<uint64_t>(st.st_size));
      }
    }
    return written;
  }
  current_size_ = std::max<uint64_t>(
      current_size_, out.empty() ? current_size_ : out.back().offset + out.back().size);
  return out;
}

absl::StatusOr<int> PackStore::ReadFd(uint32_t pack) const {
  std::lock_guard lock(read_mu_);
  auto it = read_fds_.find(pack);
  if (it != read_fds_.end()) return it->second;
  std::string path = PackPath(pack);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return absl::DataLossError(StrCat(path, " is missing"));
    return ErrnoStatus(errno, "open", path);
  }
  read_fds_[pack] = fd;
  return fd;
}

absl::StatusOr<std::string> PackStore::Read(const PackLocation& at,
                                            std::string_view id) const {
  uint64_t header_bytes = kRecordHeaderBytes + id.size();
  if (at.offset < header_bytes) {
    return absl::DataLossError("pack location points before its record");
  }
  FERRY_ASSIGN_OR_RETURN(int fd, ReadFd(at.pack));
  std::string path = PackPath(at.pack);
  std::string record(header_bytes + at.size, '\0');
  FERRY_RETURN_IF_ERROR(
      ReadAll(fd, record.data(), record.size(), at.offset - header_bytes, path));
  if (GetU32(record.data()) != id.size() || GetU32(record.data() + 4) != at.size ||
      std::string_view(record).substr(kRecordHeaderBytes, id.size()) != id) {
    return absl::DataLossError(
        StrCat(path, ": the record at ", at.offset, " is not the chunk the index names"));
  }
  return record.substr(header_bytes);
}

}  // namespace ferry::server
