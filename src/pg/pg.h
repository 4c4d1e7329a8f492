// A thin layer over libpq: parameters sent in binary, results read in binary,
// statements prepared once per connection, a bounded connection pool, and a listener
// for LISTEN/NOTIFY. Errors are absl::Status: a lost connection is UNAVAILABLE, a
// unique violation ALREADY_EXISTS, a serialization failure ABORTED.
#ifndef FERRY_PG_PG_H_
#define FERRY_PG_PG_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// libpq's types, declared here so that users of this header need not include it.
typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace ferry::pg {

// Statement parameters, all sent in binary. String views must outlive the call that
// uses the parameters; numbers and arrays are copied into the Params. Not copyable,
// since the values point into it: build a named one with `Params p; p.Bytes(x);` or
// pass a temporary `Params().Bytes(x)` straight to the call.
class Params {
 public:
  Params() = default;
  Params(const Params&) = delete;
  Params& operator=(const Params&) = delete;

  Params& Bytes(std::string_view value);                            // bytea (any bytes)
  Params& Int(int64_t value);                                       // int8
  Params& Bool(bool value);                                         // boolean
  Params& BytesArray(const std::vector<std::string_view>& values);  // bytea[]
  Params& IntArray(const std::vector<int64_t>& values);             // int8[]

  size_t size() const { return values_.size(); }

 private:
  friend class Connection;
  std::vector<unsigned int> types_;  // type oids
  std::vector<std::string_view> values_;
  std::deque<std::string> owned_;  // a deque keeps the views into it stable
};

// The rows of one statement, in binary. Columns are read by the type the SQL gives
// them: Bytes for bytea, Int for int8/int4, Bool for boolean.
class Result {
 public:
  Result() = default;
  explicit Result(PGresult* result);
  Result(Result&&) noexcept;
  Result& operator=(Result&&) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  ~Result();

  int rows() const;
  // Rows written by an INSERT/UPDATE/DELETE.
  int64_t affected() const;
  bool IsNull(int row, int column) const;
  std::string_view Bytes(int row, int column) const;
  int64_t Int(int row, int column) const;
  bool Bool(int row, int column) const;
  const PGresult* raw() const { return result_; }

 private:
  PGresult* result_ = nullptr;
};

// One statement of a pipeline; `params` (may be null: none) outlive the call.
struct Statement {
  std::string sql;
  const Params* params = nullptr;
};

// One database connection. Not safe for concurrent use: the pool hands it to one
// thread at a time.
class Connection {
 public:
  // `conninfo` is a libpq connection string or postgresql:// URI; its own settings win
  // over ferry's defaults (connect_timeout, keepalives, application_name).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(std::string_view conninfo);
  ~Connection();

  // Runs one statement with parameters (prepared on first use on this connection).
  absl::StatusOr<Result> Exec(const std::string& sql, const Params& params = Params());
  // Runs `statements` in one round trip (libpq's pipeline mode) and returns their
  // results in order. The first failing statement's error is returned; the ones after
  // it do not run. With `then_commit`, COMMIT follows in the same round trip.
  absl::StatusOr<std::vector<Result>> Pipeline(const std::vector<Statement>& statements,
                                               bool then_commit = false);

  // Transactions as the pool runs them. Begin() sends nothing: BEGIN travels with the
  // next statement. Commit() sends COMMIT unless a pipeline carried it already, and
  // nothing when no statement ran.
  void Begin();
  absl::Status Commit();
  absl::Status Rollback();
  // True once COMMIT was sent in this transaction (its outcome may be unknown).
  bool commit_sent() const { return commit_sent_; }
  // Runs SQL without parameters and without results (BEGIN, COMMIT, DDL scripts with
  // several statements).
  absl::Status Script(const std::string& sql);

  // True once the connection is known to be unusable (the server went away, or an error
  // left it in an unknown state); the pool then closes it instead of reusing it.
  bool lost() const { return lost_; }
  void MarkLost() { lost_ = true; }
  PGconn* raw() { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  absl::Status Failure(const PGresult* result, std::string_view what);
  // The statement name of `sql`, and whether it must be prepared first.
  std::pair<std::string, bool> StatementName(const std::string& sql);

  PGconn* conn_;
  bool lost_ = false;
  bool begin_pending_ = false;  // Begin() was called and BEGIN is not sent yet
  bool commit_sent_ = false;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
  uint64_t next_statement_ = 0;  // names are never reused on a connection
};

// Maps a libpq failure to a status; `conn` may be lost. Exposed for the listener.
absl::Status StatusOf(PGconn* conn, const PGresult* result, std::string_view what);
// True for the statuses StatusOf gives when the connection is gone.
bool IsConnectionLost(const absl::Status& status);

struct PoolOptions {
  std::string conninfo;
  size_t connections_max = 12;
  // A call waits at most this long for a free connection, then gets UNAVAILABLE.
  std::chrono::milliseconds checkout_wait_max{5000};
};

// At most connections_max connections, opened on demand. A connection that failed is
// closed; the next call opens a new one, so a restarted database is used again without
// restarting the process. Safe for concurrent use.
class Pool {
 public:
  explicit Pool(PoolOptions options);
  ~Pool();

  // Runs `body` between BEGIN and COMMIT on one connection (READ COMMITTED). When
  // `body` fails the transaction is rolled back. When the connection turns out to be
  // lost before COMMIT was sent (so nothing was committed), the whole transaction runs
  // once more on a new connection. A connection lost during COMMIT gives UNAVAILABLE:
  // the outcome is unknown and the caller must retry idempotently.
  absl::Status Transaction(const std::function<absl::Status(Connection&)>& body);
  // Runs `body` on one connection outside a transaction (each statement commits on its
  // own). When `retry_safe` (reads, idempotent writes) and the connection turns out to
  // be lost, `body` runs once more on a new connection.
  absl::Status Run(const std::function<absl::Status(Connection&)>& body, bool retry_safe);

  const std::string& conninfo() const { return options_.conninfo; }

 private:
  absl::StatusOr<std::unique_ptr<Connection>> Checkout(bool fresh);
  void Return(std::unique_ptr<Connection> conn);
  // Closes every idle connection: after one was found lost the others most likely are.
  void DropIdle();

  const PoolOptions options_;
  std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  size_t open_ = 0;  // connections idle or checked out; guarded by mu_
};

// A dedicated connection that LISTENs on one channel and calls `on_notify(payload)` for
// each notification, from its own thread. Reconnects after a loss (waits between tries
// are bounded) and then calls `on_connected()`, since notifications sent while it was
// away are lost. Stops in the destructor (within about `poll_interval`).
class Listener {
 public:
  Listener(std::string conninfo, std::string channel,
           std::function<void(std::string_view payload)> on_notify,
           std::function<void()> on_connected);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  void Loop();
  // Waits up to `timeout` or until stopped; true when stopped.
  bool WaitStopped(std::chrono::milliseconds timeout);

  const std::string conninfo_;
  const std::string channel_;
  const std::function<void(std::string_view)> on_notify_;
  const std::function<void()> on_connected_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ferry::pg

#endif  // FERRY_PG_PG_H_
