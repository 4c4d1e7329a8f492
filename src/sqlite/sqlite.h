// A thin RAII layer over the SQLite C API, shared by ferryd's embedded backend and
// the device's shadow store. Errors come back as absl::Status with the SQL and
// SQLite's message.
//
// A Database is not synchronized: callers serialize access (one mutex per Database).
#ifndef FERRY_SQLITE_SQLITE_H_
#define FERRY_SQLITE_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ferry::sqlite {

class Database;

// One prepared statement. Bind parameters are 1-based, columns 0-based, as in SQLite.
class Statement {
 public:
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& BindText(int index, std::string_view value);
  Statement& BindBlob(int index, std::string_view value);
  Statement& BindNull(int index);

  // Advances: true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion, expecting no rows.
  absl::Status Run();
  // Makes the statement ready to run again with new bindings.
  void Reset();

  int64_t ColumnInt(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;
  // The blob in place: valid until the next Step, Reset or destruction.
  std::string_view ColumnBlobView(int column) const;
  bool ColumnIsNull(int column) const;

 private:
  friend class Database;
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string sql);

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
  absl::Status bind_status_;
};

class Database {
 public:
  // Opens or creates the database at `path`, with a busy timeout, WAL and
  // synchronous=FULL (every commit is durable when it returns).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);
  ~Database();

  absl::Status Exec(std::string_view sql);
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  // Rows changed by the last statement.
  int64_t Changes() const;
  int UserVersion();
  absl::Status SetUserVersion(int version);

  // Applies migrations[i] for every i >= the stored user_version, each in its own
  // IMMEDIATE transaction together with the version bump. FAILED_PRECONDITION when the
  // database is newer than this program.
  absl::Status Migrate(const char* const* migrations, int count);

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless Commit() succeeded.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Database* db);
  Transaction(Transaction&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  ~Transaction();
  absl::Status Commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace ferry::sqlite

#endif  // FERRY_SQLITE_SQLITE_H_
