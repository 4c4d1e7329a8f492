// Several real ferryd processes (TLS on 127.0.0.1) on one PostgreSQL database, driven
// through the client library: appends through different instances stay one linear,
// complete log; watches hear of appends made elsewhere; a ferryd killed with SIGKILL
// loses no acknowledged append; a database restart gives errors, then recovery.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "src/client/device.h"
#include "src/pg/pg.h"
#include "src/pg/pg_testing.h"
#include "src/seal/seal.h"
#include "tests/process.h"

namespace ferry {
namespace {

using client::CollectionInfo;
using client::Device;
using testing::FerrydProcess;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

constexpr int kServers = 3;

class SharedDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    auto url = pg::CreateTestDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  // Starts kServers ferryd on `url`. All present one certificate and one server
  // secret, copied from the first, as docs/deploy.md tells operators to do.
  void StartServers(const std::string& url) {
    for (int i = 0; i < kServers; ++i) {
      std::string data = dir_ / ("server" + std::to_string(i));
      if (i > 0) {
        std::filesystem::create_directories(data);
        std::filesystem::copy(servers_[0]->data_dir() + "/tls", data + "/tls",
                              std::filesystem::copy_options::recursive);
        std::filesystem::copy_file(servers_[0]->data_dir() + "/server.secret",
                                   data + "/server.secret");
      }
      servers_.push_back(std::make_unique<FerrydProcess>(
          data, std::vector<std::string>{"--backend", url, "--db-connections", "6"}));
      ASSERT_TRUE(servers_.back()->ok()) << servers_.back()->error();
      EXPECT_EQ(servers_.back()->fingerprint(), servers_[0]->fingerprint());
    }
  }

  // Device `name` of alice, talking to server `server`; the first one creates the
  // account.
  std::unique_ptr<Device> AliceOn(int server, const std::string& name) {
    client::LoginOptions options{dir_ / ("alice-" + name),
                                 servers_[server]->address(),
                                 "alice",
                                 "passphrase of alice",
                                 name,
                                 servers_[server]->fingerprint(),
                                 true};
    auto device = have_account_ ? Device::Login(options) : Device::CreateAccount(options);
    EXPECT_TRUE(device.ok()) << device.status();
    have_account_ = true;
    return device.ok() ? *std::move(device) : nullptr;
  }

  // A sealed one-op transaction with a fresh tx_id (returned in `tx_id`).
  static std::string Envelope(Device& device, const CollectionInfo& c, uint64_t base,
                              const std::string& value, std::string* tx_id) {
    v1::Transaction tx;
    tx.set_tx_id(seal::RandomBytes(seal::kTxIdBytes));
    tx.set_device_id(device.state().device_id);
    tx.set_base_seq(base);
    v1::Item* item = tx.add_ops()->mutable_put()->mutable_item();
    item->set_id("item-" + value);
    item->add_fields()->set_bytes(value);
    *tx_id = tx.tx_id();
    auto sealed = seal::SealTransaction(c.key, c.collection_id, tx, {});
    EXPECT_TRUE(sealed.ok()) << sealed.status();
    return sealed.ok() ? *sealed : "";
  }

  // Appends one transaction on the current head, retrying lost races (bounded). The
  // envelope is sealed again for each base. Returns the seq, or the last error.
  static absl::StatusOr<uint64_t> AppendOne(Device& device, const CollectionInfo& c,
                                            const std::string& value,
                                            std::string* tx_id) {
    absl::Status last = absl::UnknownError("no attempt");
    for (int attempt = 0; attempt < 200; ++attempt) {
      absl::StatusOr<uint64_t> head = device.client().Head(c.collection_id);
      if (!head.ok()) return head.status();
      auto done = device.client().Append(c.collection_id,
                                         Envelope(device, c, *head, value, tx_id), 0);
      if (done.ok()) return done->seq();
      if (!absl::IsAborted(done.status())) return done.status();
      last = done.status();
    }
    return last;
  }

  // The whole log as seen through `device`: every entry opens, and each names its
  // predecessor as its base (a linear log, no half-appends).
  static std::map<uint64_t, v1::Transaction> CheckedLog(Device& device,
                                                        const CollectionInfo& c) {
    std::map<uint64_t, v1::Transaction> log;
    auto read = device.ReadLog(c, 0);
    EXPECT_TRUE(read.ok()) << read.status();
    if (!read.ok()) return log;
    uint64_t expected = 1;
    for (auto& [seq, tx] : *read) {
      EXPECT_EQ(seq, expected++);
      EXPECT_EQ(tx.base_seq(), seq - 1);
      log[seq] = std::move(tx);
    }
    return log;
  }

  TempDir dir_;
  std::string url_;
  std::vector<std::unique_ptr<FerrydProcess>> servers_;
  bool have_account_ = false;
};

TEST_F(SharedDatabaseTest, ThreeInstancesKeepOneLinearLogAndShareWatches) {
  StartServers(url_);
  std::vector<std::unique_ptr<Device>> devices;
  for (int i = 0; i < kServers; ++i)
    devices.push_back(AliceOn(i, "d" + std::to_string(i)));
  for (auto& d : devices) ASSERT_NE(d, nullptr);
  auto created = devices[0]->CreateCollection("Docs", "files");
  ASSERT_TRUE(created.ok()) << created.status();
  std::vector<CollectionInfo> collection;
  for (auto& d : devices) {
    auto found = d->FindCollection("Docs");
    ASSERT_TRUE(found.ok()) << found.status();
    collection.push_back(*found);
  }

  // A watch on server 0 hears of an append made through server 1.
  net::ConnectOptions watch_options{servers_[0]->address(),
                                    devices[0]->client().server_cert_pem(), "",
                                    devices[0]->state().token, 15000};
  auto watcher = net::Client::Connect(watch_options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto watch = (*watcher)->Watch({created->collection_id});
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {  // bounds every Next() below
    for (int i = 0; i < 300 && !finished; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!finished) watch->Cancel();
  });
  v1::HeadChanged change;
  ASSERT_TRUE(watch->Next(&change));
  EXPECT_EQ(change.head_seq(), 0u);
  std::string tx_id;
  auto first = AppendOne(*devices[1], collection[1], "first", &tx_id);
  ASSERT_TRUE(first.ok()) << first.status();
  auto told = Clock::now();
  ASSERT_TRUE(watch->Next(&change));
  EXPECT_EQ(change.head_seq(), 1u);
  std::printf(
      "watch on server 0 heard of the append through server 1 after %lld ms\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - told)
              .count()));

  // Devices on the three instances append concurrently.
  constexpr int kAppendsPerDevice = 15;
  std::mutex mu;
  std::map<std::string, uint64_t> acknowledged = {{tx_id, *first}};
  std::vector<std::thread> writers;
  for (int i = 0; i < kServers; ++i) {
    writers.emplace_back([&, i] {
      for (int n = 0; n < kAppendsPerDevice; ++n) {
        std::string id;
        auto seq = AppendOne(*devices[i], collection[i],
                             "d" + std::to_string(i) + "-" + std::to_string(n), &id);
        EXPECT_TRUE(seq.ok()) << seq.status();
        if (!seq.ok()) return;
        std::lock_guard lock(mu);
        EXPECT_TRUE(acknowledged.emplace(id, *seq).second);
      }
    });
  }
  for (auto& t : writers) t.join();
  const uint64_t total = 1 + kServers * kAppendsPerDevice;
  ASSERT_EQ(acknowledged.size(), total);

  // The watch on server 0 reaches the final head (it may skip heads in between).
  uint64_t watched = change.head_seq();
  for (uint64_t i = 0; i < total && watched < total; ++i) {
    if (!watch->Next(&change)) break;
    watched = change.head_seq();
  }
  EXPECT_EQ(watched, total);
  finished = true;
  watch->Cancel();
  watchdog.join();

  // Every instance serves the same linear, complete log.
  std::map<uint64_t, v1::Transaction> logs[kServers];
  for (int i = 0; i < kServers; ++i) {
    logs[i] = CheckedLog(*devices[i], collection[i]);
    ASSERT_EQ(logs[i].size(), total) << "through server " << i;
  }
  for (const auto& [id, seq] : acknowledged) {
    for (int i = 0; i < kServers; ++i) EXPECT_EQ(logs[i][seq].tx_id(), id);
  }
}

TEST_F(SharedDatabaseTest, Kill9OfOneInstanceLosesNoAcknowledgedAppend) {
  StartServers(url_);
  std::vector<std::unique_ptr<Device>> devices;
  for (int i = 0; i < kServers; ++i)
    devices.push_back(AliceOn(i, "d" + std::to_string(i)));
  for (auto& d : devices) ASSERT_NE(d, nullptr);
  ASSERT_TRUE(devices[0]->CreateCollection("Docs", "files").ok());
  std::vector<CollectionInfo> collection;
  for (auto& d : devices) {
    auto found = d->FindCollection("Docs");
    ASSERT_TRUE(found.ok()) << found.status();
    collection.push_back(*found);
  }

  constexpr int kAppendsPerDevice = 25;
  std::mutex mu;
  std::map<std::string, uint64_t> acknowledged;
  std::atomic<int> acks{0};
  std::atomic<int> survivors_done{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < kServers; ++i) {
    writers.emplace_back([&, i] {
      int failures = 0;
      for (int n = 0; n < kAppendsPerDevice && failures < 3; ++n) {
        std::string id;
        auto seq = AppendOne(*devices[i], collection[i],
                             "d" + std::to_string(i) + "-" + std::to_string(n), &id);
        if (!seq.ok()) {
          // Only the killed instance's device may fail.
          EXPECT_EQ(i, 0) << seq.status();
          ++failures;
          continue;
        }
        std::lock_guard lock(mu);
        acknowledged.emplace(id, *seq);
        acks++;
      }
      if (i > 0) survivors_done++;
    });
  }
  // Kill server 0 in the middle of the appends (bounded wait for some progress).
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (acks.load() < 10 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int acks_at_kill = acks.load();
  servers_[0]->Kill9();
  for (auto& t : writers) t.join();
  std::printf("killed server 0 after %d acknowledged appends; %d in all\n", acks_at_kill,
              acks.load());
  EXPECT_LT(acks_at_kill, acks.load()) << "the kill came after the last append";
  EXPECT_EQ(survivors_done.load(), kServers - 1);

  // Everything acknowledged is in the log at its seq; the log is linear and every
  // entry opens (no half-append); the survivors serve it.
  for (int i = 1; i < kServers; ++i) {
    std::map<uint64_t, v1::Transaction> log = CheckedLog(*devices[i], collection[i]);
    EXPECT_GE(log.size(), acknowledged.size());
    for (const auto& [id, seq] : acknowledged) {
      ASSERT_TRUE(log.count(seq)) << "acknowledged seq " << seq << " is missing";
      EXPECT_EQ(log[seq].tx_id(), id);
    }
  }
  // The survivors keep serving appends.
  std::string id;
  EXPECT_TRUE(AppendOne(*devices[1], collection[1], "after", &id).ok());
}

TEST_F(SharedDatabaseTest, DatabaseRestartGivesErrorsThenRecovers) {
  // A cluster of this test's own: restarting the shared one would disturb other tests.
  std::string state = dir_ / "pg-state";
  auto started = testing::RunCommand(
      {"/bin/bash", FERRY_PG_CLUSTER_SCRIPT, "start", state}, "", 120000);
  struct StopCluster {
    std::string state;
    ~StopCluster() {
      testing::RunCommand({"/bin/bash", FERRY_PG_CLUSTER_SCRIPT, "stop", state}, "",
                          120000);
    }
  } stop_cluster{state};
  ASSERT_EQ(started.exit_code, 0) << started.out << started.err;
  std::string cluster = testing::ReadWholeFile(state + "/url");
  while (!cluster.empty() && cluster.back() == '\n') cluster.pop_back();
  auto url = pg::CreateDatabase(cluster, "ferry_restart");
  ASSERT_TRUE(url.ok()) << url.status();
  StartServers(*url);
  std::vector<std::unique_ptr<Device>> devices;
  for (int i = 0; i < 2; ++i) devices.push_back(AliceOn(i, "d" + std::to_string(i)));
  for (auto& d : devices) ASSERT_NE(d, nullptr);
  ASSERT_TRUE(devices[0]->CreateCollection("Docs", "files").ok());
  std::vector<CollectionInfo> collection;
  for (auto& d : devices) {
    auto found = d->FindCollection("Docs");
    ASSERT_TRUE(found.ok()) << found.status();
    collection.push_back(*found);
  }
  // A watch on server 2, which serves no device of the load: it hears of appends only
  // through the database, so after the restart only if its listener came back.
  net::ConnectOptions watch_options{servers_[2]->address(),
                                    devices[0]->client().server_cert_pem(), "",
                                    devices[0]->state().token, 15000};
  auto watcher = net::Client::Connect(watch_options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto watch = (*watcher)->Watch({collection[0].collection_id});
  std::atomic<bool> watched{false};
  std::thread watchdog([&] {  // bounds every Next() below
    for (int i = 0; i < 1200 && !watched; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!watched) watch->Cancel();
  });
  struct JoinWatchdog {
    std::thread* t;
    std::atomic<bool>* done;
    std::unique_ptr<net::WatchStream>* watch;
    ~JoinWatchdog() {
      *done = true;
      (*watch)->Cancel();
      t->join();
    }
  } join_watchdog{&watchdog, &watched, &watch};
  v1::HeadChanged change;
  ASSERT_TRUE(watch->Next(&change));
  EXPECT_EQ(change.head_seq(), 0u);

  // Each device appends until it has kAppendsAfterRestart successes after the
  // restart; bounded in attempts and time.
  constexpr int kAppendsAfterRestart = 5;
  constexpr int kAttemptsMax = 5000;
  std::atomic<bool> restarted{false};
  std::atomic<int> acks{0};
  std::atomic<int> unavailable{0};
  std::mutex mu;
  std::map<std::string, uint64_t> acknowledged;
  std::vector<std::string> other_errors;
  std::vector<std::thread> writers;
  auto deadline = Clock::now() + std::chrono::seconds(120);
  for (int i = 0; i < 2; ++i) {
    writers.emplace_back([&, i] {
      int after = 0;
      for (int n = 0;
           n < kAttemptsMax && after < kAppendsAfterRestart && Clock::now() < deadline;
           ++n) {
        bool was_restarted = restarted.load();
        std::string id;
        auto seq = AppendOne(*devices[i], collection[i],
                             "d" + std::to_string(i) + "-" + std::to_string(n), &id);
        std::lock_guard lock(mu);
        if (seq.ok()) {
          acknowledged.emplace(id, *seq);
          acks++;
          if (was_restarted) ++after;
        } else if (absl::IsUnavailable(seq.status())) {
          unavailable++;
          // Errors come fast while the database is down; do not spin on them.
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        } else {
          other_errors.push_back(seq.status().ToString());
        }
      }
    });
  }
  auto progress_deadline = Clock::now() + std::chrono::seconds(60);
  while (acks.load() < 10 && Clock::now() < progress_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto restart = testing::RunCommand(
      {"/bin/bash", FERRY_PG_CLUSTER_SCRIPT, "restart", state}, "", 120000);
  restarted = true;
  for (auto& t : writers) t.join();
  ASSERT_EQ(restart.exit_code, 0) << restart.err;
  std::printf("%d appends acknowledged, %d UNAVAILABLE errors around the restart\n",
              acks.load(), unavailable.load());
  EXPECT_GT(unavailable.load(), 0) << "no client saw the database go away";
  EXPECT_TRUE(other_errors.empty()) << other_errors.front();
  // Both recovered by themselves, and nothing acknowledged was lost.
  std::map<uint64_t, v1::Transaction> log = CheckedLog(*devices[1], collection[1]);
  for (const auto& [id, seq] : acknowledged) {
    ASSERT_TRUE(log.count(seq)) << "acknowledged seq " << seq << " is missing";
    EXPECT_EQ(log[seq].tx_id(), id);
  }
  auto head = devices[0]->client().Head(collection[0].collection_id);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_GE(*head, acknowledged.size());
  // One more append after the restart; server 2's watch reaches it (each Next() is
  // bounded by the watchdog; heads only grow, so the loop ends).
  std::string last_id;
  auto last = AppendOne(*devices[0], collection[0], "last", &last_id);
  ASSERT_TRUE(last.ok()) << last.status();
  uint64_t seen = change.head_seq();
  for (uint64_t i = 0; i <= *last && seen < *last; ++i) {
    if (!watch->Next(&change)) break;
    seen = change.head_seq();
  }
  EXPECT_EQ(seen, *last) << "the watch on server 2 did not hear of the last append";
}

// Each ferryd remembers a device it read for a second (src/server/auth.h): the
// instance that revokes a device refuses it at once, and every other instance once its
// entry is a second old. The bound here is that second plus slack for a loaded machine.
TEST_F(SharedDatabaseTest, ARevocationReachesTheOtherInstances) {
  StartServers(url_);
  std::unique_ptr<Device> laptop = AliceOn(0, "laptop");
  std::unique_ptr<Device> phone = AliceOn(1, "phone");
  ASSERT_NE(laptop, nullptr);
  ASSERT_NE(phone, nullptr);
  auto created = laptop->CreateCollection("notes", "pim");
  ASSERT_TRUE(created.ok()) << created.status();
  const std::string id = created->collection_id;
  ASSERT_TRUE(phone->client().Head(id).ok());  // instance 1 now remembers the phone
  ASSERT_TRUE(laptop->client().RevokeDevice(phone->state().device_id).ok());
  const Clock::time_point revoked = Clock::now();
  absl::Status last;
  for (int i = 0; i < 100000 && Clock::now() - revoked < std::chrono::seconds(10); ++i) {
    last = phone->client().Head(id).status();
    if (!last.ok()) break;
  }
  EXPECT_TRUE(absl::IsUnauthenticated(last)) << last;
  std::printf("refused by the other instance %.0f ms after the revocation\n",
              std::chrono::duration<double, std::milli>(Clock::now() - revoked).count());
  // And it stays refused, on every instance.
  for (int server = 0; server < kServers; ++server) {
    auto again = net::Client::Connect({servers_[server]->address(),
                                       phone->client().server_cert_pem(), "",
                                       phone->state().token});
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(absl::IsUnauthenticated((*again)->Head(id).status())) << server;
  }
}

TEST_F(SharedDatabaseTest, ConfigFileChoosesTheBackend) {
  std::ofstream(dir_ / "ferryd.toml") << "backend = \"" << url_ << "\"\n"
                                      << "db_connections = 3\n";
  servers_.push_back(std::make_unique<FerrydProcess>(
      dir_ / "server", std::vector<std::string>{"--config", dir_ / "ferryd.toml"}));
  ASSERT_TRUE(servers_[0]->ok()) << servers_[0]->error();
  ASSERT_NE(AliceOn(0, "laptop"), nullptr);
  // The account is in PostgreSQL, and no SQLite store was made.
  auto conn = pg::Connection::Open(url_);
  ASSERT_TRUE(conn.ok()) << conn.status();
  auto accounts = (*conn)->Exec("SELECT count(*)::int8 FROM accounts");
  ASSERT_TRUE(accounts.ok()) << accounts.status();
  EXPECT_EQ(accounts->Int(0, 0), 1);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "server/ferry.db"));

  std::ofstream(dir_ / "bad-backend.toml") << "backend = \"mysql://x\"\n";
  auto bad = testing::RunCommand({testing::FerrydPath(), "--data", dir_ / "other",
                                  "--config", dir_ / "bad-backend.toml"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("unknown backend"), std::string::npos) << bad.err;
  std::ofstream(dir_ / "bad-pool.toml") << "db_connections = 0\n";
  bad = testing::RunCommand({testing::FerrydPath(), "--data", dir_ / "other", "--config",
                             dir_ / "bad-pool.toml"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("db_connections"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace ferry
