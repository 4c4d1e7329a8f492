// The connectors for kinds "contacts" and "calendar": a vdir folder (the layout of
// khard, khal and vdirsyncer) with one .vcf or .ics file per item. Items are records
// (record.h) whose id is the file's UID, or "file:<name without extension>" for a file
// without one; fields merge one by one. The format is in docs/formats/contacts.md and
// docs/formats/calendar.md.
#ifndef FERRY_CONNECTORS_PIM_RECORDS_CONNECTOR_H_
#define FERRY_CONNECTORS_PIM_RECORDS_CONNECTOR_H_

#include <map>
#include <memory>
#include <set>
#include <string>

#include "include/ferry/connector.h"
#include "include/ferry/engine.h"
#include "src/connectors/files/root_dir.h"
#include "src/connectors/pim/record.h"

namespace ferry::files {
class RootDir;
}

namespace ferry::pim {

struct RecordsOptions {
  std::string root;  // the vdir folder
  RecordKind kind = RecordKind::kContact;
  size_t files_max = 1'000'000;  // a scan refuses folders with more entries
  // Temporary files of ferry's own that the scan removes.
  files::LeftoverTemps leftover_temps;
  // Opens the folder (Env::OpenRoot) and gives the time (stale temporary files, the
  // mtime of files written). nullptr: Env::Default(), the real disk and clock.
  Env* env = nullptr;
};

class RecordsConnector final : public Connector {
 public:
  explicit RecordsConnector(RecordsOptions options);
  ~RecordsConnector() override;

  std::string_view Name() const override;
  bool SameStamp(const std::string& earlier, const std::string& now) const override;
  bool DataPresent() override;
  absl::StatusOr<ScanResult> Scan(
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
  bool MergesFields() const override { return true; }
  std::optional<v1::Field> MergeFieldValues(std::string_view name, const v1::Field& ours,
                                            const v1::Field& theirs) override;

  // The file name a record gets when this device creates its file: "<uid>.vcf" when the
  // UID makes a plain, portable file name, else a name made from a hash of the id;
  // "<name>.vcf" for "file:<name>".
  std::string NewFileName(const std::string& id) const;

  // The file extension of this kind: ".vcf" or ".ics".
  std::string_view Extension() const;

 private:
  absl::StatusOr<files::RootDir*> Root();
  // The text an item's file should hold: `original` rewritten, or a new file.
  absl::StatusOr<std::string> Render(const v1::Item& item, const std::string& file) const;

  RecordsOptions options_;
  Env* const env_;  // never nullptr
  std::unique_ptr<files::RootDir> root_;
  // As of the last scan: the file holding each id, each id's edit time, and files that
  // did not parse (never overwritten or deleted).
  std::map<std::string, std::string> file_of_;
  std::map<std::string, int64_t> edit_ms_;
  std::set<std::string> malformed_;
};

}  // namespace ferry::pim

#endif  // FERRY_CONNECTORS_PIM_RECORDS_CONNECTOR_H_
