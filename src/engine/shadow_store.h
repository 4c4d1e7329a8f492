// The shadow: a device's copy of the last synced state of one collection, in one
// SQLite file. It holds each item's synced fields and the connector's stamp of the
// local object it was synced to (files: size, mtime, inode, mode), the cursor (the
// last log seq folded in), the pending push intent, settings and the conflict log.
//
// Every Commit is one SQLite transaction: a crash leaves the shadow as it was before
// or after, never between. Not thread-safe: one engine owns one shadow.
#ifndef FERRY_ENGINE_SHADOW_STORE_H_
#define FERRY_ENGINE_SHADOW_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/engine/items.h"
#include "src/sqlite/sqlite.h"

namespace ferry::engine {

struct ConflictRecord {
  int64_t id = 0;  // assigned by the store
  int64_t time_ms = 0;
  std::string item_id;  // the item whose versions conflicted
  std::string kind;     // "edit/edit", "edit/delete", "create/create", ...
  std::string kept_as;  // where the other version is kept (a conflict copy's id), if any
  std::string detail;   // a sentence for people
  // Records merged field by field: the field both sides changed, the value the merge
  // kept and the other one (empty when that side removed the field).
  std::string field;
  std::string kept_value;
  std::string other_value;
  bool resolved = false;  // `ferry resolve` has settled it
};

// Stamps by item id: what the connector saw locally when the item was last synced.
using StampMap = std::map<std::string, std::string>;

// Changes to the shadow that must happen together.
struct ShadowUpdate {
  std::vector<std::pair<v1::Item, std::string>> put;  // item and its local stamp
  std::vector<std::string> erase;
  std::optional<uint64_t> cursor;
  std::optional<std::string> intent;  // a sealed envelope; "" clears it
  std::optional<uint64_t> hlc;
  std::vector<ConflictRecord> conflicts;
  std::vector<int64_t> resolved_conflicts;  // ids to mark resolved
  std::map<std::string, std::string> settings;
};

class ShadowStore {
 public:
  static absl::StatusOr<std::unique_ptr<ShadowStore>> Open(const std::string& path);

  absl::Status Commit(const ShadowUpdate& update);

  // All items and their stamps.
  absl::Status Load(ItemMap* items, StampMap* stamps);
  absl::StatusOr<uint64_t> Cursor();
  absl::StatusOr<std::string> Intent();  // "" when none
  absl::StatusOr<uint64_t> Hlc();
  // A setting (collection id, name, kind, root, connector name, ...); "" when unset.
  absl::StatusOr<std::string> Setting(const std::string& key);
  absl::StatusOr<std::vector<ConflictRecord>> Conflicts();
  absl::StatusOr<size_t> ItemCount();

 private:
  explicit ShadowStore(std::unique_ptr<sqlite::Database> db) : db_(std::move(db)) {}
  absl::StatusOr<std::string> Meta(const std::string& key);

  std::unique_ptr<sqlite::Database> db_;
};

}  // namespace ferry::engine

#endif  // FERRY_ENGINE_SHADOW_STORE_H_
