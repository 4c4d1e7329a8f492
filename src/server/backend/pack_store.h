// Chunk data of the embedded store, appended to a few large pack files instead of one
// file per chunk.
//
// Why: a sync of a folder of small files stores one chunk per file. One file per chunk
// costs an inode, a directory entry and two renames each, and ext4's inode allocator
// becomes the bottleneck of a whole initial sync (measured: two thirds of ferryd's
// time there while storing 12,000 chunks). Appending to a pack costs a write; a batch
// is made durable with one fdatasync.
//
// Layout: DIR/pack-<8 digits>, each a sequence of records
//   [u32 little-endian: id length][u32 little-endian: data length][id][data]
// written only at the end. Where a record is (pack, offset of its data, length) is
// kept by the caller (the backend's SQLite index), and only after Append returned: a
// crash during an append leaves unreferenced bytes at the end of a pack, never a
// referenced record half written. Read checks that the record at a location carries
// the id asked for, so an index that disagrees with the packs is DATA_LOSS, not wrong
// data. A pack is closed for appends at kPackBytesTarget; garbage collection of
// unreferenced records (rewriting packs) is future work.
#ifndef FERRY_SERVER_BACKEND_PACK_STORE_H_
#define FERRY_SERVER_BACKEND_PACK_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::server {

// A pack is closed for appends once it holds this many bytes.
inline constexpr uint64_t kPackBytesTarget = 1ull << 30;

struct PackLocation {
  uint32_t pack = 0;
  uint64_t offset = 0;  // of the data, in the pack
  uint32_t size = 0;    // of the data
};

class PackStore {
 public:
  // Opens (creating when missing) the pack directory `dir`.
  static absl::StatusOr<std::unique_ptr<PackStore>> Open(const std::string& dir);
  ~PackStore();
  PackStore(const PackStore&) = delete;
  PackStore& operator=(const PackStore&) = delete;

  // Appends (id, data) records and makes them durable; returns where each one's data
  // is, in order. Appends are serialized; reads may run alongside.
  absl::StatusOr<std::vector<PackLocation>> Append(
      const std::vector<std::pair<std::string_view, std::string_view>>& records);

  // The data at `at`, after checking that its record holds `id`. DATA_LOSS when it
  // does not, or the pack is shorter than the location says.
  absl::StatusOr<std::string> Read(const PackLocation& at, std::string_view id) const;

 private:
  explicit PackStore(std::string dir) : dir_(std::move(dir)) {}
  std::string PackPath(uint32_t pack) const;
  absl::StatusOr<int> ReadFd(uint32_t pack) const;

  const std::string dir_;
  std::mutex append_mu_;
  uint32_t current_ = 0;  // the pack appended to
  int current_fd_ = -1;
  uint64_t current_size_ = 0;
  // Descriptors for reading, one per pack, opened on first use.
  mutable std::mutex read_mu_;
  mutable std::map<uint32_t, int> read_fds_;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_BACKEND_PACK_STORE_H_
