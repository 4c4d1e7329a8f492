// The connector for kind "files": a folder on disk. Items are files, directories and
// symbolic links, by their '/'-separated path relative to the folder; the format is in
// docs/formats/files.md.
#ifndef FERRY_CONNECTORS_FILES_FILES_CONNECTOR_H_
#define FERRY_CONNECTORS_FILES_FILES_CONNECTOR_H_

#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "include/ferry/connector.h"
#include "include/ferry/engine.h"
#include "src/chunk/chunker.h"
#include "src/connectors/files/ignore.h"
#include "src/connectors/files/root_dir.h"
#include "src/seal/seal.h"

namespace ferry::files {

class RootDir;
class FileWriter;

struct FilesOptions {
  std::string root;                 // the folder
  size_t entries_max = 10'000'000;  // a scan refuses folders with more entries
  int hash_threads = 0;             // 0: one per core
  // Temporary files of ferry's own that the scan removes.
  LeftoverTemps leftover_temps;
  // Whether the folder's file system ignores case; unset: probed at the first scan.
  std::optional<bool> case_insensitive;
  // Opens the folder (Env::OpenRoot) and gives the time and randomness the connector
  // uses. nullptr: Env::Default(), the real disk and clock.
  Env* env = nullptr;
};

class FilesConnector final : public Connector {
 public:
  // `hasher` names chunks; `chunker_seed` (32 bytes) keys the chunk boundaries. Both
  // come from the collection key, so every device of the collection cuts and names
  // content alike.
  FilesConnector(FilesOptions options, const seal::ContentHasher* hasher,
                 std::string_view chunker_seed);
  ~FilesConnector() override;

  std::string_view Name() const override { return "files/1"; }
  bool SameStamp(const std::string& earlier, const std::string& now) const override;
  bool DataPresent() override;
  void Prefetch() override;
  absl::StatusOr<ScanResult> Scan(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) override;
  absl::StatusOr<ScanResult> ScanUnchanged(
      const std::map<std::string, ItemPtr>& synced,
      const std::map<std::string, std::string>& stamps) override;
  absl::Status ReadContent(
      const v1::Item& item, const std::string& field, const ContentPart& part,
      const std::function<absl::Status(const v1::ChunkRef&, std::string_view)>& sink)
      override;
  absl::StatusOr<std::string> ReadRange(const std::string& id, const std::string& field,
                                        uint64_t offset, uint32_t size) override;
  absl::StatusOr<std::string> Apply(const std::string& id,
                                    const std::string& expected_stamp,
                                    const v1::Item* after, ChunkSource* chunks) override;
  std::vector<absl::StatusOr<std::string>> ApplyBatch(
      const std::vector<ApplyRequest>& requests, ChunkSource* chunks) override;
  absl::StatusOr<std::string> Move(const std::string& from, const std::string& from_stamp,
                                   const std::string& to) override;
  std::string ConflictCopyId(const std::string& id, const std::string& device,
                             int64_t time_ms) override;
  int64_t EditTimeMs(const v1::Item& item) override;

 private:
  // Apply, flushing a directory or link it creates only when `sync_dirs` (a batch
  // syncs all).
  absl::StatusOr<std::string> ApplyOne(const std::string& id,
                                       const std::string& expected_stamp,
                                       const v1::Item* after, ChunkSource* chunks,
                                       bool sync_dirs);
  // What one walk of the folder saw, in walk order.
  struct Listing {
    bool present = false;  // the folder could be opened
    int64_t scan_ms = 0;   // the time before the first lstat
    absl::Status status;   // of the walk
    std::vector<std::pair<std::string, FileStat>> visited;
    // (visited.size() when it was skipped, path, why)
    std::vector<std::tuple<size_t, std::string, std::string>> skipped;
  };
  // Opens the folder anew (it may have been replaced or unmounted) and walks it.
  Listing List(int64_t scan_ms);
  absl::StatusOr<RootDir*> Root();
  absl::StatusOr<v1::Item> HashFile(const std::string& id, struct FileStat stat) const;
  absl::Status WriteContent(FileWriter& out, const v1::ContentRef& content,
                            ChunkSource* chunks) const;
  // FAILED_PRECONDITION when this device does not sync `id` (ignored here, or ferry's
  // own temporary name): writing it would make the next scan take it for deleted.
  absl::Status CheckNotIgnored(const std::string& id, bool is_dir) const;
  absl::Status CheckNoFoldCollision(const std::string& id) const;
  // Records a local path in folded_ (only where case is ignored).
  void NoteLocalName(const std::string& id);
  absl::StatusOr<IgnoreRules> LoadIgnoreRules();
  // What every scan sets up first, for itself and for Apply: the ignore rules, whether
  // case is ignored (probed once), and an empty folded_.
  absl::Status StartScan();

  FilesOptions options_;
  Env* const env_;  // never nullptr
  const seal::ContentHasher* hasher_;
  chunk::Chunker chunker_;
  std::unique_ptr<RootDir> root_;
  IgnoreRules rules_;  // as of the last scan
  // On a case-insensitive file system: CaseFoldKey of every local path -> the path, as
  // of the last scan and the writes since. A new path that folds onto another would
  // overwrite it there, so it is refused. Case-sensitive file systems keep both.
  std::map<std::string, std::string> folded_;
  absl::StatusOr<bool> ProbeCaseInsensitive();
  // The walk Prefetch started; declared last, so that it ends before root_ goes.
  std::future<Listing> prefetched_;
};

// The chunker seed of a collection: derived from its key, so boundaries are the same on
// every device and mean nothing to the server.
std::string ChunkerSeed(const seal::ContentHasher& hasher);

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_FILES_CONNECTOR_H_
