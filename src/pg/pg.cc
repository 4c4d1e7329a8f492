#include "src/pg/pg.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cassert>
#include <cstring>

#include "src/core/status_macros.h"
#include "src/core/strings.h"

namespace ferry::pg {
namespace {

// Type oids from PostgreSQL's pg_type.dat; they are fixed across versions.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt4Oid = 23;
constexpr Oid kByteaArrayOid = 1001;
constexpr Oid kInt8ArrayOid = 1016;

// Listener: how long one poll waits, and the longest pause between reconnects.
constexpr std::chrono::milliseconds kListenPollInterval{200};
constexpr std::chrono::milliseconds kReconnectPauseMax{2000};

void PutBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
}

uint64_t GetBigEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i)
    value = (value << 8) | static_cast<unsigned char>(data[i]);
  return value;
}

// The binary form of a one-dimensional array (see array_send in PostgreSQL's
// arrayfuncs.c): ndim, has-null flag, element type, then length and lower bound of the
// dimension, then each element as length + bytes.
std::string EncodeArray(Oid element_oid, const std::vector<std::string_view>& elements) {
  std::string out;
  PutBigEndian(out, elements.empty() ? 0 : 1, 4);
  PutBigEndian(out, 0, 4);
  PutBigEndian(out, element_oid, 4);
  if (elements.empty()) return out;
  PutBigEndian(out, elements.size(), 4);
  PutBigEndian(out, 1, 4);
  for (std::string_view e : elements) {
    PutBigEndian(out, e.size(), 4);
    out.append(e);
  }
  return out;
}

std::string TrimmedMessage(const char* message) {
  std::string text = message == nullptr ? "" : message;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool IsLostState(std::string_view sqlstate) {
  // Class 08: connection exception; 57P01..57P03: the server is shutting down,
  // crashed or is not accepting connections yet.
  return sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" ||
         sqlstate == "57P03";
}

constexpr std::string_view kLostPrefix = "PostgreSQL unavailable";

}  // namespace

Params& Params::Bytes(std::string_view value) {
  types_.push_back(kByteaOid);
  values_.push_back(value);
  return *this;
}

Params& Params::Int(int64_t value) {
  std::string& bytes = owned_.emplace_back();
  PutBigEndian(bytes, static_cast<uint64_t>(value), 8);
  types_.push_back(kInt8Oid);
  values_.push_back(bytes);
  return *this;
}

Params& Params::Bool(bool value) {
  owned_.emplace_back(1, value ? '\1' : '\0');
  types_.push_back(kBoolOid);
  values_.push_back(owned_.back());
  return *this;
}

Params& Params::BytesArray(const std::vector<std::string_view>& values) {
  owned_.push_back(EncodeArray(kByteaOid, values));
  types_.push_back(kByteaArrayOid);
  values_.push_back(owned_.back());
  return *this;
}

Params& Params::IntArray(const std::vector<int64_t>& values) {
  std::vector<std::string> encoded;
  encoded.reserve(values.size());
  for (int64_t v : values) {
    encoded.emplace_back();
    PutBigEndian(encoded.back(), static_cast<uint64_t>(v), 8);
  }
  owned_.push_back(EncodeArray(kInt8Oid, {encoded.begin(), encoded.end()}));
  types_.push_back(kInt8ArrayOid);
  values_.push_back(owned_.back());
  return *this;
}

Result::Result(PGresult* result) : result_(result) {}
Result::Result(Result&& other) noexcept : result_(other.result_) {
  other.result_ = nullptr;
}
Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}
Result::~Result() {
  if (result_ != nullptr) PQclear(result_);
}

int Result::rows() const { return result_ == nullptr ? 0 : PQntuples(result_); }

int64_t Result::affected() const {
  const char* tuples = result_ == nullptr ? "" : PQcmdTuples(result_);
  return tuples[0] == '\0' ? 0 : std::strtoll(tuples, nullptr, 10);
}

bool Result::IsNull(int row, int column) const {
  assert(row < rows());
  return PQgetisnull(result_, row, column) != 0;
}

std::string_view Result::Bytes(int row, int column) const {
  assert(row < rows());
  return {PQgetvalue(result_, row, column),
          static_cast<size_t>(PQgetlength(result_, row, column))};
}

int64_t Result::Int(int row, int column) const {
  assert(row < rows());
  Oid type = PQftype(result_, column);
  int length = PQgetlength(result_, row, column);
  assert((type == kInt8Oid && length == 8) || (type == kInt4Oid && length == 4));
  (void)type;
  uint64_t raw = GetBigEndian(PQgetvalue(result_, row, column), length);
  if (length == 4) return static_cast<int32_t>(static_cast<uint32_t>(raw));
  return static_cast<int64_t>(raw);
}

bool Result::Bool(int row, int column) const {
  assert(PQftype(result_, column) == kBoolOid && PQgetlength(result_, row, column) == 1);
  return PQgetvalue(result_, row, column)[0] != 0;
}

absl::Status StatusOf(PGconn* conn, const PGresult* result, std::string_view what) {
  const char* field =
      result == nullptr ? nullptr : PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string_view sqlstate = field == nullptr ? "" : field;
  std::string message = TrimmedMessage(result != nullptr ? PQresultErrorMessage(result)
                                                         : PQerrorMessage(conn));
  if (message.empty()) message = TrimmedMessage(PQerrorMessage(conn));
  if (PQstatus(conn) != CONNECTION_OK || IsLostState(sqlstate) ||
      sqlstate == "53300") {  // 53300: too many connections
    return absl::UnavailableError(
        StrCat(kLostPrefix, " (", what, "): ", message, "; retry shortly"));
  }
  if (sqlstate == "23505") return absl::AlreadyExistsError(message);
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::AbortedError(message);
  if (sqlstate == "57014") return absl::DeadlineExceededError(message);
  return absl::InternalError(
      StrCat("PostgreSQL error ", sqlstate, " in ", what, ": ", message));
}

bool IsConnectionLost(const absl::Status& status) {
  return absl::IsUnavailable(status) &&
         std::string_view(status.message().data(), status.message().size())
             .starts_with(kLostPrefix);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(std::string_view conninfo) {
  std::string info(conninfo);
  // Defaults first, the caller's string last: later keywords win (libpq docs,
  // PQconnectdbParams with expand_dbname).
  const char* keys[] = {
      "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
      "keepalives_count", "application_name", "dbname",          nullptr};
  const char* values[] = {"5", "1", "10", "5", "3", "ferryd", info.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = TrimmedMessage(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(
        StrCat(kLostPrefix, " (connect): ", message, "; retry shortly"));
  }
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

absl::Status Connection::Failure(const PGresult* result, std::string_view what) {
  absl::Status status = StatusOf(conn_, result, what);
  if (IsConnectionLost(status)) lost_ = true;
  return status;
}

std::pair<std::string, bool> Connection::StatementName(const std::string& sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return {it->second, false};
  std::string name = StrCat("ferry_", next_statement_++);
  prepared_.emplace(sql, name);
  return {name, true};
}

absl::StatusOr<Result> Connection::Exec(const std::string& sql, const Params& params) {
  assert(params.types_.size() == params.values_.size());
  if (begin_pending_) {
    FERRY_ASSIGN_OR_RETURN(std::vector<Result> results, Pipeline({{sql, &params}}));
    assert(results.size() == 1);
    return std::move(results[0]);
  }
  auto [name, fresh] = StatementName(sql);
  if (fresh) {
    Result prepared(PQprepare(conn_, name.c_str(), sql.c_str(),
                              static_cast<int>(params.size()), params.types_.data()));
    if (PQresultStatus(prepared.raw()) != PGRES_COMMAND_OK) {
      prepared_.erase(sql);
      return Failure(prepared.raw(), "prepare");
    }
  }
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats(params.size(), 1);
  for (std::string_view v : params.values_) {
    values.push_back(v.data());
    lengths.push_back(static_cast<int>(v.size()));
  }
  Result result(PQexecPrepared(conn_, name.c_str(), static_cast<int>(params.size()),
                               values.data(), lengths.data(), formats.data(),
                               /*resultFormat=*/1));
  ExecStatusType status = PQresultStatus(result.raw());
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return Failure(result.raw(), "query");
  }
  return result;
}

// Sends every statement (each preceded by its PREPARE when new on this connection),
// one Sync, then reads one result per command and finally the Sync's. A connection
// that does not come back to a clean state is marked lost.
absl::StatusOr<std::vector<Result>> Connection::Pipeline(
    const std::vector<Statement>& statements, bool then_commit) {
  static const Params kNoParams;
  std::vector<Statement> all;
  if (begin_pending_) all.push_back({"BEGIN", nullptr});
  all.insert(all.end(), statements.begin(), statements.end());
  if (then_commit) all.push_back({"COMMIT", nullptr});
  const size_t first_user = begin_pending_ ? 1 : 0;

  if (PQenterPipelineMode(conn_) != 1) return Failure(nullptr, "pipeline");
  std::vector<bool> is_prepare;  // per command sent, in order
  std::vector<size_t> statement_of;
  bool sent = true;
  for (size_t i = 0; i < all.size() && sent; ++i) {
    const Params& params = all[i].params == nullptr ? kNoParams : *all[i].params;
    if (all[i].params == nullptr) {
      sent = PQsendQueryParams(conn_, all[i].sql.c_str(), 0, nullptr, nullptr, nullptr,
                               nullptr, 1) == 1;
    } else {
      auto [name, fresh] = StatementName(all[i].sql);
      if (fresh) {
        sent = PQsendPrepare(conn_, name.c_str(), all[i].sql.c_str(),
                             static_cast<int>(params.size()), params.types_.data()) == 1;
        is_prepare.push_back(true);
        statement_of.push_back(i);
      }
      std::vector<const char*> values;
      std::vector<int> lengths;
      std::vector<int> formats(params.size(), 1);
      for (std::string_view v : params.values_) {
        values.push_back(v.data());
        lengths.push_back(static_cast<int>(v.size()));
      }
      sent = sent &&
             PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(params.size()),
                                 values.data(), lengths.data(), formats.data(), 1) == 1;
    }
    is_prepare.push_back(false);
    statement_of.push_back(i);
  }
  sent = sent && PQpipelineSync(conn_) == 1;
  if (!sent) {
    lost_ = true;  // the pipeline is half sent: the connection's state is unknown
    prepared_.clear();
    return Failure(nullptr, "send");
  }
  if (begin_pending_) begin_pending_ = false;
  if (then_commit) commit_sent_ = true;

  std::vector<Result> results;
  absl::Status error;
  for (size_t c = 0; c < is_prepare.size(); ++c) {
    Result r(PQgetResult(conn_));
    if (r.raw() == nullptr) {
      lost_ = true;
      return Failure(nullptr, "pipeline result");
    }
    ExecStatusType status = PQresultStatus(r.raw());
    if (status == PGRES_FATAL_ERROR && error.ok()) {
      error = Failure(r.raw(), is_prepare[c] ? "prepare" : "query");
      if (is_prepare[c]) prepared_.erase(all[statement_of[c]].sql);
    } else if (status == PGRES_PIPELINE_ABORTED && is_prepare[c]) {
      prepared_.erase(all[statement_of[c]].sql);  // never prepared
    }
    if (!is_prepare[c] && statement_of[c] >= first_user &&
        statement_of[c] < first_user + statements.size()) {
      results.push_back(std::move(r));
    }
    // Each command's results end with a null.
    Result end(PQgetResult(conn_));
    if (end.raw() != nullptr) {
      lost_ = true;
      return Failure(nullptr, "pipeline results out of step");
    }
  }
  Result sync(PQgetResult(conn_));
  if (sync.raw() == nullptr || PQresultStatus(sync.raw()) != PGRES_PIPELINE_SYNC ||
      PQexitPipelineMode(conn_) != 1) {
    lost_ = true;
    return error.ok() ? Failure(sync.raw(), "pipeline sync") : error;
  }
  if (!error.ok()) return error;
  assert(results.size() == statements.size());
  return results;
}

void Connection::Begin() {
  assert(!begin_pending_);
  begin_pending_ = true;
  commit_sent_ = false;
}

absl::Status Connection::Commit() {
  if (begin_pending_) {  // no statement ran: there is no transaction to commit
    begin_pending_ = false;
    return absl::OkStatus();
  }
  if (commit_sent_) return absl::OkStatus();
  commit_sent_ = true;
  return Script("COMMIT");
}

absl::Status Connection::Rollback() {
  if (begin_pending_) {  // nothing was sent
    begin_pending_ = false;
    return absl::OkStatus();
  }
  return Script("ROLLBACK");
}

absl::Status Connection::Script(const std::string& sql) {
  if (begin_pending_) {
    begin_pending_ = false;
    return Script(StrCat("BEGIN; ", sql));
  }
  Result result(PQexec(conn_, sql.c_str()));
  ExecStatusType status = PQresultStatus(result.raw());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return Failure(result.raw(), sql.size() < 20 ? sql : "script");
  }
  return absl::OkStatus();
}

Pool::Pool(PoolOptions options) : options_(std::move(options)) {
  assert(options_.connections_max > 0);
}

Pool::~Pool() {
  std::lock_guard lock(mu_);
  assert(idle_.size() == open_);  // nothing is checked out any more
  idle_.clear();
}

absl::StatusOr<std::unique_ptr<Connection>> Pool::Checkout(bool fresh) {
  {
    std::unique_lock lock(mu_);
    bool free = returned_.wait_for(lock, options_.checkout_wait_max, [&] {
      return !idle_.empty() || open_ < options_.connections_max;
    });
    if (!free) {
      return absl::UnavailableError(StrCat(
          "all ", options_.connections_max, " PostgreSQL connections stayed busy for ",
          options_.checkout_wait_max.count(), " ms; retry shortly"));
    }
    if (!idle_.empty() && (!fresh || open_ >= options_.connections_max)) {
      std::unique_ptr<Connection> conn = std::move(idle_.back());
      idle_.pop_back();
      if (!fresh) return conn;
      --open_;  // an idle one makes room for a fresh one; closed below, unlocked
      lock.unlock();
      conn.reset();
      lock.lock();
    }
    ++open_;
  }
  absl::StatusOr<std::unique_ptr<Connection>> opened =
      Connection::Open(options_.conninfo);
  if (!opened.ok()) {
    {
      std::lock_guard lock(mu_);
      --open_;
    }
    returned_.notify_one();
  }
  return opened;
}

void Pool::Return(std::unique_ptr<Connection> conn) {
  assert(conn != nullptr);
  {
    std::lock_guard lock(mu_);
    if (conn->lost()) {
      --open_;
    } else {
      idle_.push_back(std::move(conn));
    }
  }
  returned_.notify_one();
  // A lost connection is closed here, outside the lock.
}

void Pool::DropIdle() {
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard lock(mu_);
    dropped.swap(idle_);
    open_ -= dropped.size();
  }
  returned_.notify_all();
}

absl::Status Pool::Transaction(const std::function<absl::Status(Connection&)>& body) {
  absl::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Checkout(attempt > 0));
    conn->Begin();
    status = body(*conn);
    if (status.ok()) {
      status = conn->Commit();
    } else if (!conn->lost()) {
      // A connection whose transaction state is unknown must not be reused.
      if (!conn->Rollback().ok()) conn->MarkLost();
    }
    bool committing = conn->commit_sent();
    bool lost = conn->lost();
    Return(std::move(conn));
    if (!lost) return status;
    DropIdle();
    if (committing) {
      return absl::UnavailableError(
          StrCat(status.message(), " (during COMMIT: the outcome is unknown)"));
    }
  }
  return status;
}

absl::Status Pool::Run(const std::function<absl::Status(Connection&)>& body,
                       bool retry_safe) {
  absl::Status status;
  for (int attempt = 0; attempt < (retry_safe ? 2 : 1); ++attempt) {
    FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Checkout(attempt > 0));
    status = body(*conn);
    bool lost = conn->lost();
    Return(std::move(conn));
    if (!lost) return status;
    DropIdle();
  }
  return status;
}

Listener::Listener(std::string conninfo, std::string channel,
                   std::function<void(std::string_view payload)> on_notify,
                   std::function<void()> on_connected)
    : conninfo_(std::move(conninfo)),
      channel_(std::move(channel)),
      on_notify_(std::move(on_notify)),
      on_connected_(std::move(on_connected)) {
  thread_ = std::thread([this] { Loop(); });
}

Listener::~Listener() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

bool Listener::WaitStopped(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return stop_cv_.wait_for(lock, timeout, [this] { return stop_; });
}

void Listener::Loop() {
  std::chrono::milliseconds pause{100};
  while (!WaitStopped(std::chrono::milliseconds(0))) {
    absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(conninfo_);
    if (conn.ok()) {
      // The channel is a constant of ours, never user input.
      absl::Status listening = (*conn)->Script(StrCat("LISTEN ", channel_));
      if (listening.ok()) {
        pause = std::chrono::milliseconds(100);
        on_connected_();
      }
      PGconn* raw = (*conn)->raw();
      // Each round waits at most kListenPollInterval, so a stop is seen promptly.
      while (listening.ok() && !WaitStopped(std::chrono::milliseconds(0))) {
        pollfd p = {PQsocket(raw), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(kListenPollInterval.count()));
        if (PQconsumeInput(raw) == 0 || PQstatus(raw) != CONNECTION_OK) break;
        for (PGnotify* n = PQnotifies(raw); n != nullptr; n = PQnotifies(raw)) {
          on_notify_(n->extra == nullptr ? "" : n->extra);
          PQfreemem(n);
        }
      }
    }
    if (WaitStopped(pause)) return;
    pause = std::min(pause * 2, kReconnectPauseMax);
  }
}

}  // namespace ferry::pg
