// What only a shared database adds to the conformance suite: several processes' worth
// of backends on one database, lost connections, notifications.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/pg/pg.h"
#include "src/pg/pg_testing.h"
#include "src/server/backend/backend.h"

namespace ferry::server {
namespace {

class PostgresBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = pg::CreateTestDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  static void Populate(Backend& backend) {
    AccountRecord account{"a1", "alice", 1, 2, 65536, std::string(16, 's'), "hash", 1};
    DeviceRecord device{"d1", "a1", "laptop", "token1", 1, 1, false};
    ASSERT_TRUE(backend.CreateAccount(account, device).ok());
    ASSERT_TRUE(backend.CreateCollection({"c1", "a1", "meta", "key", 1, 1}).ok());
  }

  static AppendRecord MakeAppend(std::string tx_id, uint64_t base) {
    AppendRecord a;
    a.collection_id = "c1";
    a.tx_id = std::move(tx_id);
    a.device_id = "d1";
    a.base_seq = base;
    a.envelope = "envelope-" + a.tx_id;
    a.now_ms = 1000;
    return a;
  }

  std::string url_;
};

TEST_F(PostgresBackendTest, MigrationsRunOnceWhenManyStartTogether) {
  constexpr int kStarters = 6;
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int i = 0; i < kStarters; ++i) {
    threads.emplace_back([&] {
      auto backend = OpenPostgresBackend(url_, 2);
      EXPECT_TRUE(backend.ok()) << backend.status();
      if (backend.ok()) opened++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(opened.load(), kStarters);
  auto conn = pg::Connection::Open(url_);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto versions = (*conn)->Exec("SELECT version FROM ferry_schema ORDER BY version");
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_GE(versions->rows(), 1);
  for (int i = 0; i < versions->rows(); ++i) EXPECT_EQ(versions->Int(i, 0), i + 1);
}

TEST_F(PostgresBackendTest, AppendsThroughSeveralBackendsStayLinear) {
  constexpr int kBackends = 3;
  constexpr int kAppendsPerBackend = 20;
  std::vector<std::unique_ptr<Backend>> backends;
  for (int i = 0; i < kBackends; ++i) {
    auto backend = OpenPostgresBackend(url_, 4);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backends.push_back(*std::move(backend));
  }
  Populate(*backends[0]);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int b = 0; b < kBackends; ++b) {
    threads.emplace_back([&, b] {
      for (int i = 0; i < kAppendsPerBackend; ++i) {
        std::string tx = "b" + std::to_string(b) + "-" + std::to_string(i);
        for (int attempt = 0; attempt < kBackends * kAppendsPerBackend * 2; ++attempt) {
          auto head = backends[b]->Head("c1");
          if (!head.ok()) return;
          auto r = backends[b]->Append(MakeAppend(tx, *head));
          if (r.ok()) {
            // A retry of the same tx through another backend is a duplicate.
            auto again = backends[(b + 1) % kBackends]->Append(MakeAppend(tx, *head));
            EXPECT_TRUE(again.ok() && again->duplicate && again->seq == r->seq);
            done++;
            break;
          }
          EXPECT_TRUE(absl::IsAborted(r.status())) << r.status();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kBackends * kAppendsPerBackend);
  auto all = backends[2]->Pull("c1", 0, 1000, 1 << 20);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->entries.size(), static_cast<size_t>(kBackends * kAppendsPerBackend));
  for (size_t i = 0; i < all->entries.size(); ++i) EXPECT_EQ(all->entries[i].seq, i + 1);
}

TEST_F(PostgresBackendTest, RecoversFromTerminatedConnections) {
  auto backend = OpenPostgresBackend(url_, 4);
  ASSERT_TRUE(backend.ok()) << backend.status();
  Populate(**backend);
  ASSERT_TRUE((*backend)->Append(MakeAppend("t1", 0)).ok());
  // The database kills every connection of ours, as a restart or failover would.
  auto cluster = pg::TestClusterUrl();
  ASSERT_TRUE(cluster.ok());
  auto admin = pg::Connection::Open(*cluster);
  ASSERT_TRUE(admin.ok());
  size_t from = url_.find("@/") + 2;
  std::string database = url_.substr(from, url_.find('?') - from);
  auto killed = (*admin)->Exec(
      "SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity"
      " WHERE datname = convert_from($1, 'UTF8') AND application_name = 'ferryd'",
      pg::Params().Bytes(database));
  ASSERT_TRUE(killed.ok()) << killed.status();
  EXPECT_GE(killed->Int(0, 0), 1);
  // Reads and transactions that fail before COMMIT run again on a new connection.
  auto head = (*backend)->Head("c1");
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(*head, 1u);
  auto second = (*backend)->Append(MakeAppend("t2", 1));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->seq, 2u);
}

TEST_F(PostgresBackendTest, ExhaustedPoolIsUnavailableAfterABoundedWait) {
  pg::Pool pool(pg::PoolOptions{url_, 1, std::chrono::milliseconds(200)});
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false, release = false;
  std::thread holder([&] {
    EXPECT_TRUE(pool.Transaction([&](pg::Connection& conn) {
                      std::unique_lock lock(mu);
                      holding = true;
                      cv.notify_all();
                      // Bounded: the main thread releases it, or 30 s pass.
                      cv.wait_for(lock, std::chrono::seconds(30),
                                  [&] { return release; });
                      return conn.Exec("SELECT 1::int8").status();
                    })
                    .ok());
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return holding; }));
  }
  absl::Status busy = pool.Run(
      [](pg::Connection& conn) { return conn.Exec("SELECT 1::int8").status(); }, true);
  EXPECT_TRUE(absl::IsUnavailable(busy)) << busy;
  EXPECT_NE(busy.message().find("busy"), absl::string_view::npos) << busy;
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  holder.join();
  // The connection came back and serves again.
  EXPECT_TRUE(pool.Run(
                      [](pg::Connection& conn) {
                        auto r = conn.Exec("SELECT 7::int8");
                        if (!r.ok()) return r.status();
                        EXPECT_EQ(r->Int(0, 0), 7);
                        return absl::OkStatus();
                      },
                      true)
                  .ok());
}

TEST_F(PostgresBackendTest, PipelineStopsAtTheFirstErrorAndTheConnectionLives) {
  auto conn = pg::Connection::Open(url_);
  ASSERT_TRUE(conn.ok()) << conn.status();
  pg::Params one, zero;
  one.Int(1);
  zero.Int(0);
  for (int round = 0; round < 2; ++round) {  // the second round uses prepared statements
    (*conn)->Begin();
    auto failed = (*conn)->Pipeline({{"SELECT $1::int8 + 1", &one},
                                     {"SELECT 1 / $1::int8", &zero},
                                     {"SELECT $1::int8 + 2", &one}},
                                    /*then_commit=*/true);
    EXPECT_TRUE(absl::IsInternal(failed.status())) << failed.status();
    EXPECT_NE(failed.status().message().find("division by zero"),
              absl::string_view::npos);
    EXPECT_FALSE((*conn)->lost());
    EXPECT_TRUE((*conn)->Rollback().ok());
    (*conn)->Begin();
    auto fine =
        (*conn)->Pipeline({{"SELECT $1::int8 + 1", &one}, {"SELECT $1::int8 + 2", &one}});
    ASSERT_TRUE(fine.ok()) << fine.status();
    ASSERT_EQ(fine->size(), 2u);
    EXPECT_EQ((*fine)[0].Int(0, 0), 2);
    EXPECT_EQ((*fine)[1].Int(0, 0), 3);
    EXPECT_TRUE((*conn)->Commit().ok());
  }
  // A unique violation is ALREADY_EXISTS.
  ASSERT_TRUE((*conn)->Script("CREATE TABLE t(k INT8 PRIMARY KEY)").ok());
  auto first = (*conn)->Exec("INSERT INTO t VALUES($1)", one);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->affected(), 1);
  EXPECT_TRUE(
      absl::IsAlreadyExists((*conn)->Exec("INSERT INTO t VALUES($1)", one).status()));
}

TEST_F(PostgresBackendTest, UnreachableDatabaseIsUnavailable) {
  auto cluster = pg::TestClusterUrl();
  ASSERT_TRUE(cluster.ok());
  // A socket folder where no server listens.
  auto opened = OpenPostgresBackend("postgresql://postgres@/x?host=/nonexistent-ferry");
  EXPECT_TRUE(absl::IsUnavailable(opened.status())) << opened.status();
  EXPECT_NE(opened.status().message().find("PostgreSQL"), absl::string_view::npos);
}

TEST_F(PostgresBackendTest, HeadsArriveFromOtherBackends) {
  auto writer = OpenPostgresBackend(url_, 2);
  auto reader = OpenPostgresBackend(url_, 2);
  ASSERT_TRUE(writer.ok() && reader.ok());
  Populate(**writer);
  std::mutex mu;
  std::condition_variable cv;
  uint64_t seen = 0;
  int connected = 0;
  ASSERT_TRUE((*reader)
                  ->FollowHeads(
                      [&](const std::string& id, uint64_t head) {
                        std::lock_guard lock(mu);
                        if (id == "c1") seen = std::max(seen, head);
                        cv.notify_all();
                      },
                      [&] {
                        std::lock_guard lock(mu);
                        ++connected;
                        cv.notify_all();
                      })
                  .ok());
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return connected > 0; }));
  }
  ASSERT_TRUE((*writer)->Append(MakeAppend("t1", 0)).ok());
  ASSERT_TRUE((*writer)->Append(MakeAppend("t2", 1)).ok());
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return seen == 2; }));
}

}  // namespace
}  // namespace ferry::server
