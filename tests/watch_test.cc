// `ferry watch` with real ferry and ferryd processes: device b stays online and
// follows device a's pushes as they happen, finds its own local changes by rescanning,
// survives a ferryd restart, and stops cleanly on SIGTERM. One sync of a collection
// at a time per device: a second process is refused with a clear message.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/core/strings.h"
#include "tests/process.h"
#include "tests/two_devices.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using testing::BackgroundCommand;
using testing::CommandResult;
using testing::FerrydProcess;
using testing::ReadWholeFile;

// Bounds of every wait on the watcher: generous for a loaded CI machine; a pass takes
// a fraction of a second each.
constexpr int kWaitMs = 60000;

class WatchTest : public testing::TwoDevicesTest {
 protected:
  // `ferry watch --interval S` on `device`, once it says it is watching; nullptr (with
  // the failure recorded) when it does not.
  std::unique_ptr<BackgroundCommand> StartWatch(const std::string& device,
                                                const std::string& interval_s,
                                                bool watch_folders = true) {
    std::vector<std::string> args{testing::FerryPath(), "--home",  Home(device), "watch",
                                  "--interval",         interval_s};
    if (!watch_folders) args.push_back("--no-folder-watch");
    auto watch = std::make_unique<BackgroundCommand>(args);
    if (!watch->ok() || !watch->WaitFor("watching 1 collection", kWaitMs, 0, true)) {
      ADD_FAILURE() << "ferry watch did not start: " << watch->err();
      return nullptr;
    }
    return watch;
  }
  // a's sync, which must succeed; the seq it reached.
  uint64_t SyncA() {
    CommandResult r = Ferry("a", {"sync"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return testing::ReportedSeq(r.out);
  }
};

TEST_F(WatchTest, FollowsAnotherDevicesPushes) {
  // An interval of a day: only the server's Watch stream can make b sync.
  auto watch = StartWatch("b", "86400");
  ASSERT_NE(watch, nullptr);

  std::ofstream(root_a_ / "one.txt") << "first\n";
  uint64_t seq = SyncA();
  ASSERT_GT(seq, 0u);
  ASSERT_TRUE(watch->WaitFor(StrCat("at seq ", seq, "\n"), kWaitMs)) << watch->err();
  EXPECT_EQ(ReadWholeFile(root_b_ / "one.txt"), "first\n");

  // Several pushes in a row; the watcher may take them in one sync or several.
  for (int i = 0; i < 3; ++i) {
    std::ofstream(root_a_ / StrCat("more-", i, ".txt")) << i << "\n";
    seq = SyncA();
  }
  size_t from = watch->out().size();
  ASSERT_TRUE(watch->WaitFor(StrCat("at seq ", seq, "\n"), kWaitMs, from))
      << watch->out() << watch->err();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ReadWholeFile(root_b_ / StrCat("more-", i, ".txt")), StrCat(i, "\n"));
  }
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
}

TEST_F(WatchTest, FindsLocalChangesByRescanning) {
  auto watch = StartWatch("b", "1", /*watch_folders=*/false);
  ASSERT_NE(watch, nullptr);
  std::ofstream(root_b_ / "from-b.txt") << "made on b\n";
  ASSERT_TRUE(watch->WaitFor("pushed 1 items", kWaitMs)) << watch->err();
  SyncA();
  EXPECT_EQ(ReadWholeFile(root_a_ / "from-b.txt"), "made on b\n");
  EXPECT_EQ(watch->Signal(SIGINT, kWaitMs), 0) << watch->err();
}

// With no rescan for a day, only the folder watch can find b's changes: a new
// directory with a file, then a file in that directory (watched since it appeared).
TEST_F(WatchTest, FindsLocalChangesThroughTheFolderWatch) {
  auto watch = StartWatch("b", "86400");
  ASSERT_NE(watch, nullptr);
  fs::create_directories(root_b_ / "new" / "deeper");
  std::ofstream(root_b_ / "new" / "deeper" / "one.txt") << "one\n";
  ASSERT_TRUE(watch->WaitFor("pushed 3 items", kWaitMs)) << watch->out() << watch->err();
  size_t from = watch->out().size();
  std::ofstream(root_b_ / "new" / "deeper" / "two.txt") << "two\n";
  ASSERT_TRUE(watch->WaitFor("pushed 1 items", kWaitMs, from))
      << watch->out() << watch->err();
  SyncA();
  EXPECT_EQ(ReadWholeFile(root_a_ / "new" / "deeper" / "one.txt"), "one\n");
  EXPECT_EQ(ReadWholeFile(root_a_ / "new" / "deeper" / "two.txt"), "two\n");
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
}

// A sync started by another device's push does not walk the folder: it takes the
// local data to be as last synced. A local edit made since must still survive: the
// write over it is refused, and the sync then scans and keeps both versions.
TEST_F(WatchTest, ASyncWithoutAScanKeepsALocalEditMadeSince) {
  std::ofstream(root_a_ / "f.txt") << "base\n";
  uint64_t seq = SyncA();
  // No rescan and no folder watch: only pushes make b sync.
  auto watch = StartWatch("b", "86400", /*watch_folders=*/false);
  ASSERT_NE(watch, nullptr);
  ASSERT_TRUE(watch->WaitFor(StrCat("at seq ", seq, "\n"), kWaitMs)) << watch->err();

  std::ofstream(root_b_ / "f.txt") << "b's edit, not scanned yet\n";
  std::ofstream(root_a_ / "f.txt") << "a's edit\n";
  size_t from = watch->out().size();
  SyncA();
  ASSERT_TRUE(watch->WaitFor(" 1 conflicts, ", kWaitMs, from))
      << watch->out() << watch->err();
  std::multiset<std::string> contents;
  for (const auto& entry : fs::directory_iterator(root_b_)) {
    if (entry.path().filename().string().starts_with("f")) {
      contents.insert(ReadWholeFile(entry.path()));
    }
  }
  EXPECT_EQ(contents,
            (std::multiset<std::string>{"a's edit\n", "b's edit, not scanned yet\n"}));
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
}

TEST_F(WatchTest, ReconnectsAfterTheServerRestarts) {
  auto watch = StartWatch("b", "86400");
  ASSERT_NE(watch, nullptr);
  std::ofstream(root_a_ / "before.txt") << "before\n";
  uint64_t seq = SyncA();
  ASSERT_TRUE(watch->WaitFor(StrCat("at seq ", seq, "\n"), kWaitMs)) << watch->err();

  std::string address = server_->address();
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_TRUE(watch->WaitFor("lost the server", kWaitMs, 0, true)) << watch->err();
  server_ = std::make_unique<FerrydProcess>(dir_ / "server", std::vector<std::string>{},
                                            address);
  ASSERT_TRUE(server_->ok()) << server_->error();

  std::ofstream(root_a_ / "after.txt") << "after\n";
  seq = SyncA();
  ASSERT_TRUE(watch->WaitFor(StrCat("at seq ", seq, "\n"), kWaitMs))
      << watch->out() << watch->err();
  EXPECT_EQ(ReadWholeFile(root_b_ / "after.txt"), "after\n");
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
}

// While the server is away the watcher waits for it in short steps: a stop request
// still ends it promptly.
TEST_F(WatchTest, StopsWhileTheServerIsAway) {
  auto watch = StartWatch("b", "86400");
  ASSERT_NE(watch, nullptr);
  ASSERT_EQ(server_->Stop(), 0);
  // A sync failed: the server is gone (whether or not the stream had opened yet).
  ASSERT_TRUE(watch->WaitFor("failed to connect", kWaitMs, 0, true)) << watch->err();
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
}

TEST_F(WatchTest, OneSyncOfACollectionAtATime) {
  // What `ferry watch` or another `ferry sync` holds while it syncs: the collection's
  // sync.lock, here taken by the test.
  std::string lock_path;
  for (const auto& entry : fs::directory_iterator(Home("b") + "/collections")) {
    lock_path = entry.path() / "sync.lock";
  }
  ASSERT_FALSE(lock_path.empty());
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  std::ofstream(root_b_ / "waiting.txt") << "waits its turn\n";
  CommandResult refused = Ferry("b", {"sync"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("another ferry process"), std::string::npos) << refused.err;
  ::close(fd);
  CommandResult done = Ferry("b", {"sync"});
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(done.out.find("pushed 1 items"), std::string::npos) << done.out;
}

TEST_F(WatchTest, OneEngineInAFolderAtATime) {
  // What any ferry process syncing into the folder holds, for whichever home or
  // collection: an flock of the folder itself, here taken by the test.
  int fd = ::open(root_b_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  std::ofstream(root_b_ / "waiting.txt") << "waits its turn\n";
  CommandResult refused = Ferry("b", {"sync"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("another ferry process is syncing a collection in"),
            std::string::npos)
      << refused.err;
  ::close(fd);
  CommandResult done = Ferry("b", {"sync"});
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(done.out.find("pushed 1 items"), std::string::npos) << done.out;
}

// A temporary file left by a crash (its rename lost) is removed by the next sync at
// once: with the folder locked nobody else can be writing it. It used to stay for an
// hour, and a directory holding it could not be deleted for another device meanwhile.
TEST_F(WatchTest, LeftoverTemporaryFileDoesNotKeepADeletedDirectory) {
  fs::create_directories(root_a_ / "d");
  std::ofstream(root_a_ / "d" / "x.txt") << "x\n";
  for (int i = 0; i < 4; ++i) {  // so that deleting d is not a mass deletion
    std::ofstream(root_a_ / StrCat("keep-", i, ".txt")) << i << "\n";
  }
  SyncA();
  ASSERT_EQ(Ferry("b", {"sync"}).exit_code, 0);
  ASSERT_EQ(ReadWholeFile(root_b_ / "d" / "x.txt"), "x\n");
  std::ofstream(root_b_ / "d" / ".ferry-tmp-leftover") << "half a file";
  fs::remove_all(root_a_ / "d");
  SyncA();
  CommandResult b = Ferry("b", {"sync"});
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_FALSE(fs::exists(root_b_ / "d")) << b.out << b.err;
}

TEST_F(WatchTest, StopsOnSignalWhileIdle) {
  auto watch = StartWatch("b", "86400");
  ASSERT_NE(watch, nullptr);
  EXPECT_EQ(watch->Signal(SIGTERM, kWaitMs), 0) << watch->err();
  EXPECT_NE(watch->err().find("stopping"), std::string::npos) << watch->err();
}

}  // namespace
}  // namespace ferry
