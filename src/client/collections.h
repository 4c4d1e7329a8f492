// The collections a device syncs: added with a local place for their data, each with
// its own shadow under HOME/collections/<collection id>/shadow.db.
#ifndef FERRY_CLIENT_COLLECTIONS_H_
#define FERRY_CLIENT_COLLECTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "include/ferry/engine.h"
#include "src/client/device.h"

namespace ferry::client {

struct LocalCollection {
  std::string collection_id;
  std::string name;
  std::string kind;
  std::string root;        // absolute path of the data
  std::string state_path;  // the shadow database
};

// Makes collection `name` sync with the data at `root` on this device: creates the
// collection when the account has none of that name, or joins it (its kind must
// match). Creates `root` when missing. FAILED_PRECONDITION when this device already
// syncs that name or that folder.
absl::StatusOr<LocalCollection> AddCollection(Device& device, const std::string& name,
                                              const std::string& kind,
                                              const std::string& root);

// The collections this device syncs, by name.
absl::StatusOr<std::vector<LocalCollection>> ListLocalCollections(
    const std::string& home);

// One sync of `local`.
absl::StatusOr<SyncReport> SyncCollection(Device& device, const LocalCollection& local,
                                          const SyncOptions& options);

// Conflicts recorded for `local`, oldest first.
struct ConflictView {
  int64_t id;
  int64_t time_ms;
  std::string item_id, kind, kept_as, detail;
  // Field conflicts of records: the field, the value kept and the other one.
  std::string field, kept_value, other_value;
  bool resolved;
};
absl::StatusOr<std::vector<ConflictView>> ListConflicts(const LocalCollection& local);

// Settles field conflict `conflict_id` of `local`: `take` is "kept" (keep what the merge
// kept), "other" (switch to the value it did not keep) or a new value for the field's
// value part. A switch rewrites the local record now; the next sync pushes it.
// FAILED_PRECONDITION for a whole-item conflict (its other version is a conflict copy:
// keep, edit or delete that), NOT_FOUND for an unknown id.
absl::Status ResolveConflict(Device& device, const LocalCollection& local,
                             int64_t conflict_id, const std::string& take);

struct LocalStatus {
  uint64_t cursor = 0;
  size_t items = 0;
  bool push_pending = false;  // an interrupted push will be retried
  size_t conflicts = 0;
};
absl::StatusOr<LocalStatus> GetLocalStatus(const LocalCollection& local);

}  // namespace ferry::client

#endif  // FERRY_CLIENT_COLLECTIONS_H_
