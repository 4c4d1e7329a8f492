#include "src/engine/shadow_store.h"

#include <google/protobuf/arena.h>

#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::engine {
namespace {

constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE items(id TEXT PRIMARY KEY, item BLOB NOT NULL, stamp BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE conflicts(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  item_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  kept_as TEXT NOT NULL,
  detail TEXT NOT NULL);
)sql",
    // Field conflicts of records: which field, the value kept and the other one.
    R"sql(
ALTER TABLE conflicts ADD COLUMN field TEXT NOT NULL DEFAULT '';
ALTER TABLE conflicts ADD COLUMN kept_value BLOB NOT NULL DEFAULT x'';
ALTER TABLE conflicts ADD COLUMN other_value BLOB NOT NULL DEFAULT x'';
ALTER TABLE conflicts ADD COLUMN resolved INTEGER NOT NULL DEFAULT 0;
)sql",
};

// Meta keys of the engine itself; settings use "setting/<key>".
constexpr char kCursorKey[] = "cursor";
constexpr char kIntentKey[] = "intent";
constexpr char kHlcKey[] = "hlc";
// Rows of the conflict log kept; older ones are dropped.
constexpr int64_t kConflictsKeptMax = 10000;

absl::StatusOr<uint64_t> ParseCount(const std::string& text) {
  if (text.empty()) return 0;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return absl::DataLossError("shadow: a counter is damaged");
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShadowStore>> ShadowStore::Open(const std::string& path) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> db,
                         sqlite::Database::Open(path));
  FERRY_RETURN_IF_ERROR(db->Migrate(kMigrations, std::size(kMigrations)));
  return std::unique_ptr<ShadowStore>(new ShadowStore(std::move(db)));
}

absl::Status ShadowStore::Commit(const ShadowUpdate& update) {
  FERRY_ASSIGN_OR_RETURN(sqlite::Transaction tx, sqlite::Transaction::Begin(db_.get()));
  FERRY_ASSIGN_OR_RETURN(
      auto put,
      db_->Prepare(
          "INSERT INTO items(id, item, stamp) VALUES(?,?,?)"
          " ON CONFLICT(id) DO UPDATE SET item = excluded.item, stamp = excluded.stamp"));
  for (const auto& [item, stamp] : update.put) {
    put.Reset();
    put.BindText(1, item.id()).BindBlob(2, item.SerializeAsString()).BindBlob(3, stamp);
    FERRY_RETURN_IF_ERROR(put.Run());
  }
  FERRY_ASSIGN_OR_RETURN(auto erase, db_->Prepare("DELETE FROM items WHERE id = ?"));
  for (const std::string& id : update.erase) {
    erase.Reset();
    FERRY_RETURN_IF_ERROR(erase.BindText(1, id).Run());
  }
  FERRY_ASSIGN_OR_RETURN(
      auto meta, db_->Prepare("INSERT INTO meta(key, value) VALUES(?,?)"
                              " ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
  auto set_meta = [&meta](const std::string& key, const std::string& value) {
    meta.Reset();
    return meta.BindText(1, key).BindBlob(2, value).Run();
  };
  if (update.cursor)
    FERRY_RETURN_IF_ERROR(set_meta(kCursorKey, std::to_string(*update.cursor)));
  if (update.intent) FERRY_RETURN_IF_ERROR(set_meta(kIntentKey, *update.intent));
  if (update.hlc) FERRY_RETURN_IF_ERROR(set_meta(kHlcKey, std::to_string(*update.hlc)));
  for (const auto& [key, value] : update.settings) {
    FERRY_RETURN_IF_ERROR(set_meta("setting/" + key, value));
  }
  // A conflict already logged and not resolved is not logged twice: a merge that was
  // interrupted after logging its conflicts (they are logged before anything is
  // applied) finds the same ones when it runs again.
  FERRY_ASSIGN_OR_RETURN(
      auto logged,
      db_->Prepare("SELECT 1 FROM conflicts WHERE resolved = 0 AND item_id = ? AND "
                   "kind = ? AND kept_as = ? AND field = ? AND kept_value = ? AND "
                   "other_value = ?"));
  FERRY_ASSIGN_OR_RETURN(auto conflict,
                         db_->Prepare("INSERT INTO conflicts(time_ms, item_id, kind, "
                                      "kept_as, detail, field, kept_value, other_value)"
                                      " VALUES(?,?,?,?,?,?,?,?)"));
  for (const ConflictRecord& c : update.conflicts) {
    logged.Reset();
    logged.BindText(1, c.item_id).BindText(2, c.kind).BindText(3, c.kept_as);
    logged.BindText(4, c.field).BindBlob(5, c.kept_value).BindBlob(6, c.other_value);
    FERRY_ASSIGN_OR_RETURN(bool seen, logged.Step());
    if (seen) continue;
    conflict.Reset();
    conflict.Bind(1, c.time_ms).BindText(2, c.item_id).BindText(3, c.kind);
    conflict.BindText(4, c.kept_as).BindText(5, c.detail).BindText(6, c.field);
    FERRY_RETURN_IF_ERROR(
        conflict.BindBlob(7, c.kept_value).BindBlob(8, c.other_value).Run());
  }
  FERRY_ASSIGN_OR_RETURN(auto resolve,
                         db_->Prepare("UPDATE conflicts SET resolved = 1 WHERE id = ?"));
  for (int64_t id : update.resolved_conflicts) {
    resolve.Reset();
    FERRY_RETURN_IF_ERROR(resolve.Bind(1, id).Run());
  }
  if (!update.conflicts.empty()) {
    FERRY_ASSIGN_OR_RETURN(
        auto trim,
        db_->Prepare(
            "DELETE FROM conflicts WHERE id <= (SELECT MAX(id) FROM conflicts) - ?"));
    FERRY_RETURN_IF_ERROR(trim.Bind(1, kConflictsKeptMax).Run());
  }
  return tx.Commit();
}

// Items are parsed into one arena shared by all of them: no allocation per message,
// about a third less memory than separate heap objects, and all freed together when
// the last item is dropped. Rows come in id order, so maps grow at their end.
absl::Status ShadowStore::Load(ItemMap* items, StampMap* stamps) {
  FERRY_ASSIGN_OR_RETURN(auto s,
                         db_->Prepare("SELECT id, item, stamp FROM items ORDER BY id"));
  auto arena = std::make_shared<google::protobuf::Arena>();
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    v1::Item* item = google::protobuf::Arena::CreateMessage<v1::Item>(arena.get());
    std::string_view blob = s.ColumnBlobView(1);
    if (!item->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(StrCat("shadow: item ", s.ColumnText(0), " is damaged"));
    }
    std::string id = s.ColumnText(0);
    stamps->emplace_hint(stamps->end(), id, s.ColumnBlob(2));
    items->emplace_hint(items->end(), std::move(id), ItemPtr(arena, item));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ShadowStore::Meta(const std::string& key) {
  FERRY_ASSIGN_OR_RETURN(auto s, db_->Prepare("SELECT value FROM meta WHERE key = ?"));
  s.BindText(1, key);
  FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.ColumnBlob(0) : std::string();
}

absl::StatusOr<uint64_t> ShadowStore::Cursor() {
  FERRY_ASSIGN_OR_RETURN(std::string text, Meta(kCursorKey));
  return ParseCount(text);
}

absl::StatusOr<std::string> ShadowStore::Intent() { return Meta(kIntentKey); }

absl::StatusOr<uint64_t> ShadowStore::Hlc() {
  FERRY_ASSIGN_OR_RETURN(std::string text, Meta(kHlcKey));
  return ParseCount(text);
}

absl::StatusOr<std::string> ShadowStore::Setting(const std::string& key) {
  return Meta("setting/" + key);
}

absl::StatusOr<std::vector<ConflictRecord>> ShadowStore::Conflicts() {
  FERRY_ASSIGN_OR_RETURN(auto s,
                         db_->Prepare("SELECT id, time_ms, item_id, kind, kept_as, "
                                      "detail, field, kept_value, other_value, resolved"
                                      " FROM conflicts ORDER BY id"));
  std::vector<ConflictRecord> out;
  for (;;) {
    FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.ColumnInt(0), s.ColumnInt(1), s.ColumnText(2), s.ColumnText(3),
                   s.ColumnText(4), s.ColumnText(5), s.ColumnText(6), s.ColumnBlob(7),
                   s.ColumnBlob(8), s.ColumnInt(9) != 0});
  }
  return out;
}

absl::StatusOr<size_t> ShadowStore::ItemCount() {
  FERRY_ASSIGN_OR_RETURN(auto s, db_->Prepare("SELECT COUNT(*) FROM items"));
  FERRY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return absl::InternalError("COUNT returned no row");
  return static_cast<size_t>(s.ColumnInt(0));
}

}  // namespace ferry::engine
