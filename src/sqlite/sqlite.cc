#include "src/sqlite/sqlite.h"

#include <sqlite3.h>

#include <cassert>
#include <utility>

#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::sqlite {
namespace {

constexpr int kBusyTimeoutMs = 10000;

absl::Status Error(sqlite3* db, int rc, std::string_view what) {
  std::string message = StrCat("sqlite: ", what, ": ",
                               db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_CONSTRAINT) return absl::AlreadyExistsError(message);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return absl::UnavailableError(message);
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return absl::DataLossError(message);
  }
  // A full disk, as ErrnoStatus says ENOSPC: the statement was rolled back and may
  // succeed once there is space again.
  if (primary == SQLITE_FULL) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace

Statement::Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql)
    : db_(db), stmt_(stmt), sql_(std::move(sql)) {}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      sql_(std::move(other.sql_)),
      bind_status_(std::move(other.bind_status_)) {}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, sql_);
  return *this;
}

Statement& Statement::BindText(int index, std::string_view value) {
  int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                               SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, sql_);
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view value) {
  // A zero-length blob must not bind as NULL: give SQLite a valid pointer.
  const char* data = value.empty() ? "" : value.data();
  int rc = sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, sql_);
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_status_.ok()) bind_status_ = Error(db_, rc, sql_);
  return *this;
}

absl::StatusOr<bool> Statement::Step() {
  FERRY_RETURN_IF_ERROR(bind_status_);
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(db_, rc, sql_);
}

absl::Status Statement::Run() {
  FERRY_ASSIGN_OR_RETURN(bool row, Step());
  if (row) return absl::InternalError(StrCat("sqlite: unexpected row: ", sql_));
  return absl::OkStatus();
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = absl::OkStatus();
}

int64_t Statement::ColumnInt(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string Statement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text), size);
}

std::string Statement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (blob == nullptr) return {};
  return std::string(static_cast<const char*>(blob), size);
}

std::string_view Statement::ColumnBlobView(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  int size = sqlite3_column_bytes(stmt_, column);
  if (blob == nullptr) return {};
  return std::string_view(static_cast<const char*>(blob), static_cast<size_t>(size));
}

bool Statement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = Error(raw, rc, StrCat("open ", path));
    sqlite3_close(raw);
    return status;
  }
  std::unique_ptr<Database> db(new Database(raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  FERRY_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  return db;
}

Database::~Database() { sqlite3_close(db_); }

absl::Status Database::Exec(std::string_view sql) {
  std::string text(sql);
  char* message = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  sqlite3_free(message);
  return Error(db_, rc, text);
}

absl::StatusOr<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc =
      sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(db_, rc, sql);
  return Statement(db_, stmt, std::string(sql));
}

int64_t Database::Changes() const { return sqlite3_changes64(db_); }

int Database::UserVersion() {
  auto stmt = Prepare("PRAGMA user_version");
  if (!stmt.ok()) return -1;
  auto row = stmt->Step();
  if (!row.ok() || !*row) return -1;
  return static_cast<int>(stmt->ColumnInt(0));
}

absl::Status Database::SetUserVersion(int version) {
  return Exec(StrCat("PRAGMA user_version=", version));
}

absl::Status Database::Migrate(const char* const* migrations, int count) {
  assert(count >= 0);
  for (int attempt = 0; attempt < count + 1; ++attempt) {
    FERRY_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(this));
    int version = UserVersion();
    if (version < 0) return absl::InternalError("sqlite: cannot read user_version");
    if (version > count) {
      return absl::FailedPreconditionError(StrCat(
          "database schema version ", version, " is newer than this program's ", count));
    }
    if (version == count) return absl::OkStatus();
    FERRY_RETURN_IF_ERROR(Exec(migrations[version]));
    FERRY_RETURN_IF_ERROR(SetUserVersion(version + 1));
    FERRY_RETURN_IF_ERROR(tx.Commit());
  }
  return absl::InternalError("sqlite: migrations did not converge");
}

absl::StatusOr<Transaction> Transaction::Begin(Database* db) {
  FERRY_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  return Transaction(db);
}

Transaction::~Transaction() {
  if (db_ != nullptr) {
    // Rolling back can only fail when no transaction is open; nothing to do then.
    (void)db_->Exec("ROLLBACK");
  }
}

absl::Status Transaction::Commit() {
  assert(db_ != nullptr);
  absl::Status status = db_->Exec("COMMIT");
  if (status.ok()) db_ = nullptr;
  return status;
}

}  // namespace ferry::sqlite
