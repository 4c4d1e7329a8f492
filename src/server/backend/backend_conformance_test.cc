// The behaviour every Backend must have. Runs against each implementation the build
// knows; a new backend adds its factory to kBackends and must pass unchanged.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/pg/pg_testing.h"
#include "src/server/backend/backend.h"

namespace ferry::server {
namespace {

struct BackendFactory {
  const char* name;
  // Opens the backend that belongs to `dir` (the same one again on a reopen).
  std::function<absl::StatusOr<std::unique_ptr<Backend>>(const std::string& dir)> open;
  // Removes what open() made beyond `dir`.
  std::function<void(const std::string& dir)> remove;
};

void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

// One database per test in the "pg" fixture's cluster, named after the test's folder.
std::string DatabaseOf(const std::string& dir) {
  std::string name = "ferry_conformance_";
  for (unsigned char c : std::filesystem::path(dir).filename().string()) {
    name += "0123456789abcdef"[c >> 4];
    name += "0123456789abcdef"[c & 15];
  }
  return name;
}

absl::StatusOr<std::unique_ptr<Backend>> OpenPostgresForTest(const std::string& dir) {
  absl::StatusOr<std::string> cluster = pg::TestClusterUrl();
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<std::string> url = pg::CreateDatabase(*cluster, DatabaseOf(dir));
  if (!url.ok()) return url.status();
  return OpenPostgresBackend(*url);
}

const BackendFactory kBackends[] = {
    {"sqlite", [](const std::string& dir) { return OpenSqliteBackend(dir); },
     [](const std::string&) {}},
    {"postgresql", OpenPostgresForTest,
     [](const std::string& dir) {
       absl::StatusOr<std::string> cluster = pg::TestClusterUrl();
       if (cluster.ok()) {
         EXPECT_TRUE(pg::DropDatabase(*cluster, DatabaseOf(dir)).ok());
       }
     }},
};

class BackendTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ferry-backend-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    Reopen();
    AccountRecord account{"a1", "alice", 1, 2, 65536, std::string(16, 's'), "hash", 1};
    DeviceRecord device{"d1", "a1", "laptop", "token1", 1, 1, false};
    ASSERT_TRUE(backend_->CreateAccount(account, device).ok());
    ASSERT_TRUE(
        backend_->CreateDevice({"d2", "a1", "phone", "token2", 2, 2, false}).ok());
    ASSERT_TRUE(backend_->CreateCollection({"c1", "a1", "meta", "key", 1, 1}).ok());
  }
  void TearDown() override {
    backend_.reset();
    GetParam().remove(dir_);
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    backend_.reset();
    auto opened = GetParam().open(dir_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    backend_ = *std::move(opened);
  }

  AppendRecord MakeAppend(std::string tx_id, uint64_t base, std::string device = "d1") {
    AppendRecord a;
    a.collection_id = "c1";
    a.tx_id = std::move(tx_id);
    a.device_id = std::move(device);
    a.base_seq = base;
    a.envelope = "envelope-" + a.tx_id;
    a.now_ms = 1000;
    return a;
  }

  std::string dir_;
  std::unique_ptr<Backend> backend_;
};

TEST_P(BackendTest, NameIsStable) { EXPECT_EQ(backend_->Name(), GetParam().name); }

TEST_P(BackendTest, DuplicateUserRefused) {
  AccountRecord again{"a2", "alice", 1, 2, 65536, std::string(16, 's'), "h", 1};
  DeviceRecord device{"d9", "a2", "x", "token9", 1, 1, false};
  EXPECT_TRUE(absl::IsAlreadyExists(backend_->CreateAccount(again, device)));
  // The failed account left no device behind.
  EXPECT_TRUE(absl::IsNotFound(backend_->GetDeviceByTokenHash("token9").status()));
}

TEST_P(BackendTest, DevicesListRenameRevoke) {
  auto list = backend_->ListDevices("a1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "laptop");
  ASSERT_TRUE(backend_->RenameDevice("a1", "d2", "tablet").ok());
  ASSERT_TRUE(backend_->RevokeDevice("a1", "d2").ok());
  auto d2 = backend_->GetDeviceByTokenHash("token2");
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ(d2->name, "tablet");
  EXPECT_TRUE(d2->revoked);
  // Another account's device cannot be touched.
  EXPECT_TRUE(absl::IsNotFound(backend_->RevokeDevice("other", "d1")));
}

TEST_P(BackendTest, CompareAndAppend) {
  auto first = backend_->Append(MakeAppend("t1", 0));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->seq, 1u);
  EXPECT_FALSE(first->duplicate);
  // A second append on the old base loses the race.
  EXPECT_TRUE(absl::IsAborted(backend_->Append(MakeAppend("t2", 0)).status()));
  auto second = backend_->Append(MakeAppend("t2", 1));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->seq, 2u);
  EXPECT_EQ(*backend_->Head("c1"), 2u);
}

TEST_P(BackendTest, AppendIsIdempotentByTxId) {
  ASSERT_TRUE(backend_->Append(MakeAppend("t1", 0)).ok());
  ASSERT_TRUE(backend_->Append(MakeAppend("t2", 1)).ok());
  // A retry of t1 (its base is stale now) returns its original seq.
  auto retry = backend_->Append(MakeAppend("t1", 0));
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->seq, 1u);
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(*backend_->Head("c1"), 2u);
}

TEST_P(BackendTest, AppendRefusesMissingChunk) {
  AppendRecord a = MakeAppend("t1", 0);
  a.chunk_ids = {std::string(32, 'x')};
  auto refused = backend_->Append(a);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(*backend_->Head("c1"), 0u);
  ASSERT_TRUE(backend_->PutChunks("c1", {{std::string(32, 'x'), "sealed"}}).ok());
  EXPECT_TRUE(backend_->Append(a).ok());
}

TEST_P(BackendTest, ChunksAreContentAddressedPerCollection) {
  std::string id(32, 'a');
  auto stored = backend_->PutChunks("c1", {{id, "data"}, {id, "data"}});
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 1u);  // the same chunk twice in a batch is stored once
  EXPECT_EQ(*backend_->PutChunks("c1", {{id, "data"}}), 0u);
  std::vector<std::pair<std::string, std::string>> many;
  for (char c = 'c'; c < 'c' + 20; ++c)
    many.emplace_back(std::string(32, c), std::string(100, c));
  EXPECT_EQ(*backend_->PutChunks("c1", many), 20u);
  EXPECT_EQ(*backend_->GetChunk("c1", std::string(32, 'k')), std::string(100, 'k'));
  auto has = backend_->HasChunks("c1", {id, std::string(32, 'b')});
  ASSERT_TRUE(has.ok());
  EXPECT_EQ(*has, (std::vector<bool>{true, false}));
  EXPECT_EQ(*backend_->GetChunk("c1", id), "data");
  EXPECT_TRUE(absl::IsNotFound(backend_->GetChunk("c2", id).status()));
}

TEST_P(BackendTest, PullPagesInOrder) {
  for (uint64_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(backend_->Append(MakeAppend("t" + std::to_string(i), i)).ok());
  }
  auto page = backend_->Pull("c1", 3, 4, 1 << 20);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 4u);
  EXPECT_EQ(page->entries[0].seq, 4u);
  EXPECT_EQ(page->entries[3].seq, 7u);
  EXPECT_EQ(page->entries[0].envelope, "envelope-t3");
  EXPECT_TRUE(page->more);
  EXPECT_EQ(page->head_seq, 10u);
  // A byte bound still returns at least one entry.
  auto tiny = backend_->Pull("c1", 0, 100, 1);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->entries.size(), 1u);
  auto rest = backend_->Pull("c1", 7, 100, 1 << 20);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->entries.size(), 3u);
  EXPECT_FALSE(rest->more);
}

TEST_P(BackendTest, LeasesFenceAppends) {
  auto lease = backend_->AcquireLease("c1", "d1", 1000, 5000);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->fencing_token, 1u);
  // Another device can neither take the lease nor append while it is live.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      backend_->AcquireLease("c1", "d2", 2000, 5000).status()));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(backend_->Append(MakeAppend("t1", 0, "d2")).status()));
  // The holder appends with its token.
  AppendRecord a = MakeAppend("t1", 0);
  a.fencing_token = 1;
  EXPECT_TRUE(backend_->Append(a).ok());
  // After expiry d2 takes over with a larger token; d1's token is now stale.
  auto taken = backend_->AcquireLease("c1", "d2", 7000, 5000);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->fencing_token, 2u);
  AppendRecord stale = MakeAppend("t2", 1);
  stale.fencing_token = 1;
  stale.now_ms = 7001;
  EXPECT_TRUE(absl::IsFailedPrecondition(backend_->Append(stale).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      backend_->RenewLease("c1", "d1", 1, 7001, 5000).status()));
  auto renewed = backend_->RenewLease("c1", "d2", 2, 8000, 5000);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->expires_ms, 13000);
  // Only the holder, with its token, frees a live lease.
  EXPECT_TRUE(absl::IsFailedPrecondition(backend_->ReleaseLease("c1", "d1", 2, 8000)));
  EXPECT_TRUE(absl::IsFailedPrecondition(backend_->ReleaseLease("c1", "d2", 1, 8000)));
  ASSERT_TRUE(backend_->ReleaseLease("c1", "d2", 2, 8000).ok());
  EXPECT_TRUE(backend_->ReleaseLease("c1", "d2", 2, 8000).ok());  // already free
  auto again = backend_->AcquireLease("c1", "d1", 8001, 5000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fencing_token, 3u);
  // With no live lease, a token that was never issued is refused too.
  AppendRecord forged = MakeAppend("t3", 1);
  forged.fencing_token = 99;
  forged.now_ms = 20000;
  EXPECT_TRUE(absl::IsFailedPrecondition(backend_->Append(forged).status()));
  forged.fencing_token = 0;
  EXPECT_TRUE(backend_->Append(forged).ok());
}

TEST_P(BackendTest, ConcurrentAppendsKeepTheLogLinear) {
  constexpr int kThreads = 4;
  constexpr int kAppendsPerThread = 25;
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppendsPerThread; ++i) {
        std::string tx = "t" + std::to_string(t) + "-" + std::to_string(i);
        // Bounded retries: each lost race means another append won.
        for (int attempt = 0; attempt < kThreads * kAppendsPerThread * 2; ++attempt) {
          auto head = backend_->Head("c1");
          if (!head.ok()) return;
          auto r = backend_->Append(MakeAppend(tx, *head));
          if (r.ok()) {
            done++;
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kThreads * kAppendsPerThread);
  auto all = backend_->Pull("c1", 0, 1000, 1 << 20);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->entries.size(), static_cast<size_t>(kThreads * kAppendsPerThread));
  for (size_t i = 0; i < all->entries.size(); ++i) EXPECT_EQ(all->entries[i].seq, i + 1);
}

// Refused appends and retries racing with good appends (a backend that commits several
// appends together must keep each one's outcome its own).
TEST_P(BackendTest, ConcurrentRefusalsAndRetriesChangeNothing) {
  constexpr int kThreads = 4;
  constexpr int kAppendsPerThread = 10;
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppendsPerThread; ++i) {
        std::string tx = "t" + std::to_string(t) + "-" + std::to_string(i);
        for (int attempt = 0; attempt < kThreads * kAppendsPerThread * 4; ++attempt) {
          auto head = backend_->Head("c1");
          if (!head.ok()) return;
          AppendRecord missing = MakeAppend(tx + "-missing", *head);
          missing.chunk_ids = {std::string(32, static_cast<char>('A' + t))};
          EXPECT_FALSE(backend_->Append(missing).ok());
          auto r = backend_->Append(MakeAppend(tx, *head));
          if (!r.ok()) continue;
          auto again = backend_->Append(MakeAppend(tx, *head));
          EXPECT_TRUE(again.ok() && again->duplicate && again->seq == r->seq);
          done++;
          break;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kThreads * kAppendsPerThread);
  auto all = backend_->Pull("c1", 0, 1000, 1 << 20);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->entries.size(), static_cast<size_t>(kThreads * kAppendsPerThread));
  for (size_t i = 0; i < all->entries.size(); ++i) {
    EXPECT_EQ(all->entries[i].seq, i + 1);
    EXPECT_EQ(all->entries[i].envelope.find("missing"), std::string::npos);
  }
}

TEST_P(BackendTest, SurvivesReopen) {
  ASSERT_TRUE(backend_->Append(MakeAppend("t1", 0)).ok());
  ASSERT_TRUE(backend_->PutChunks("c1", {{std::string(32, 'z'), "bytes"}}).ok());
  Reopen();
  EXPECT_EQ(*backend_->Head("c1"), 1u);
  EXPECT_EQ(*backend_->GetChunk("c1", std::string(32, 'z')), "bytes");
  EXPECT_EQ(backend_->GetAccountByUser("alice")->account_id, "a1");
}

INSTANTIATE_TEST_SUITE_P(AllBackends, BackendTest, ::testing::ValuesIn(kBackends),
                         [](const auto& param_info) {
                           return std::string(param_info.param.name);
                         });

}  // namespace
}  // namespace ferry::server
