// FolderWatcher on real directories: changes anywhere in a watched tree are reported
// for the right folder, new directories are watched as they appear, and a symbolic
// link is never followed into another tree.
#include "src/client/folder_watch.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "tests/process.h"

namespace ferry::client {
namespace {

namespace fs = std::filesystem;

// Bound of every wait for an event (they arrive within milliseconds).
constexpr int kWaitMs = 10000;

class FolderWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(base_ / "one" / "sub");
    fs::create_directories(base_ / "two");
    fs::create_directories(base_ / "outside");
    auto created = FolderWatcher::Create();
    ASSERT_TRUE(created.ok()) << created.status();
    watcher_ = *std::move(created);
    ASSERT_TRUE(watcher_->Watch(1, (base_ / "one").string()).ok());
    ASSERT_TRUE(watcher_->Watch(2, (base_ / "two").string()).ok());
  }
  // The folders reported by waits of `watcher` (default: watcher_) until one reports
  // something (or the bound).
  std::set<size_t> WaitForAny(FolderWatcher* watcher = nullptr) {
    if (watcher == nullptr) watcher = watcher_.get();
    std::set<size_t> got;
    for (int waited = 0; got.empty() && waited < kWaitMs; waited += 100) {
      got = watcher->Wait(100);
    }
    return got;
  }
  // Whatever is still queued, so that the next check starts from nothing.
  void Drain() {
    for (int i = 0; i < 100 && !watcher_->Wait(50).empty(); ++i) {
    }
  }

  ferry::testing::TempDir dir_;
  const fs::path base_ = dir_.path();
  std::unique_ptr<FolderWatcher> watcher_;
};

TEST_F(FolderWatchTest, ReportsTheFolderThatChanged) {
  EXPECT_TRUE(watcher_->Wait(0).empty());
  std::ofstream(base_ / "one" / "sub" / "f.txt") << "x";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  fs::remove(base_ / "one" / "sub" / "f.txt");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  std::ofstream(base_ / "two" / "g.txt") << "y";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{2});
  EXPECT_TRUE(watcher_->TakeError().ok());
}

TEST_F(FolderWatchTest, WatchesDirectoriesAsTheyAppear) {
  fs::create_directories(base_ / "one" / "new" / "deeper");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  std::ofstream(base_ / "one" / "new" / "deeper" / "f.txt") << "x";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  // A directory moved in from outside the tree is watched too.
  fs::create_directories(base_ / "outside" / "moved");
  fs::rename(base_ / "outside" / "moved", base_ / "two" / "moved");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{2});
  Drain();
  std::ofstream(base_ / "two" / "moved" / "f.txt") << "x";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{2});
}

TEST_F(FolderWatchTest, ADirectoryMovedOutIsNoLongerWatchedAndOneMovedWithinIs) {
  fs::rename(base_ / "one" / "sub", base_ / "outside" / "sub");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  std::ofstream(base_ / "outside" / "sub" / "f.txt") << "x";
  std::ofstream(base_ / "two" / "marker") << "x";  // queued after any event of f.txt
  EXPECT_EQ(WaitForAny(), std::set<size_t>{2});
  Drain();
  // Within the tree: watched under its new name, new directories in it too.
  fs::create_directories(base_ / "one" / "a");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  fs::rename(base_ / "one" / "a", base_ / "one" / "b");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  fs::create_directories(base_ / "one" / "b" / "c");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  Drain();
  std::ofstream(base_ / "one" / "b" / "c" / "f.txt") << "x";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});
  EXPECT_TRUE(watcher_->TakeError().ok());
}

TEST_F(FolderWatchTest, NeverFollowsASymbolicLink) {
  fs::create_directory_symlink(base_ / "outside", base_ / "one" / "link");
  EXPECT_EQ(WaitForAny(), std::set<size_t>{1});  // the link itself is an entry
  Drain();
  // Events are queued in order as the writes happen: had the link been followed,
  // folder 1 would come with folder 2's marker.
  std::ofstream(base_ / "outside" / "f.txt") << "x";
  std::ofstream(base_ / "two" / "marker") << "x";
  EXPECT_EQ(WaitForAny(), std::set<size_t>{2});
}

TEST_F(FolderWatchTest, ARootThatIsALinkIsFollowedButNothingBelowIt) {
  fs::create_directories(base_ / "elsewhere");
  fs::create_directory_symlink(base_ / "outside", base_ / "elsewhere" / "link");
  fs::create_directory_symlink(base_ / "elsewhere", base_ / "root-link");
  auto other = FolderWatcher::Create();
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Watch(3, (base_ / "root-link").string()).ok());
  ASSERT_TRUE((*other)->Watch(5, (base_ / "two").string()).ok());
  std::ofstream(base_ / "outside" / "f.txt") << "x";  // behind a link inside the tree
  std::ofstream(base_ / "two" / "marker") << "x";
  EXPECT_EQ(WaitForAny(other->get()), std::set<size_t>{5});
  std::ofstream(base_ / "elsewhere" / "g.txt") << "x";  // in the tree the root names
  EXPECT_EQ(WaitForAny(other->get()), std::set<size_t>{3});
}

TEST_F(FolderWatchTest, AMissingFolderWatchesNothingAndIsNoError) {
  auto other = FolderWatcher::Create();
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE((*other)->Watch(4, (base_ / "missing").string()).ok());
  EXPECT_TRUE((*other)->Wait(0).empty());
}

}  // namespace
}  // namespace ferry::client
