// What MemFileSystem adds to the RootDir contract (root_dir_test.cc runs that contract
// on it): the crash model, fault injection, inodes and times, threads.
#include "src/connectors/files/mem_file_system.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::files {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kMtimeNs = 1'700'000'000'000'000'000;

class MemFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs_.Mkdir("/r").ok());
    ASSERT_TRUE(fs_.Mkdir("/other").ok());
    fs_.SyncAll();
    Reopen();
  }
  void Reopen() {
    auto root = fs_.OpenRoot("/r");
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = std::move(*root);
  }
  absl::Status Write(std::string_view rel, std::string data,
                     RootDir::Expect expect = {}) {
    return root_->ReplaceFile(
        rel, [&](FileWriter& out) { return out.Append(data); }, 0644, kMtimeNs, expect);
  }
  absl::StatusOr<std::unique_ptr<RootDir::PendingFile>> WriteTemp(std::string_view rel,
                                                                  std::string data) {
    return root_->WriteTemp(rel, [&](FileWriter& out) { return out.Append(data); }, 0644,
                            kMtimeNs, {});
  }
  std::string Read(const std::string& path) {
    absl::StatusOr<std::string> data = fs_.ReadFile(path);
    return data.ok() ? *data : "<" + data.status().ToString() + ">";
  }
  std::vector<std::string> Names(const std::string& dir) {
    absl::StatusOr<std::vector<std::string>> names = fs_.List(dir);
    EXPECT_TRUE(names.ok()) << names.status();
    return names.ok() ? *names : std::vector<std::string>{};
  }

  int64_t now_ns_ = 1'000;
  MemFileSystem fs_{[this] { return now_ns_ += 1000; }};
  std::unique_ptr<RootDir> root_;
};

TEST_F(MemFileSystemTest, OpenRootMissingNotADirectoryAndThroughLinks) {
  EXPECT_TRUE(absl::IsNotFound(fs_.OpenRoot("/missing").status()));
  ASSERT_TRUE(fs_.WriteFile("/file", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(fs_.OpenRoot("/file").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(fs_.OpenRoot("relative").status()));
  ASSERT_TRUE(fs_.Symlink("/abs", "/r").ok());
  ASSERT_TRUE(fs_.Symlink("/other/rel", "../r").ok());
  ASSERT_TRUE(fs_.Symlink("/loop", "/loop").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(fs_.OpenRoot("/loop").status()));
  for (const char* path : {"/abs", "/other/rel"}) {
    auto root = fs_.OpenRoot(path);
    ASSERT_TRUE(root.ok()) << path << ": " << root.status();
    EXPECT_EQ((*root)->path(), path);
    ASSERT_TRUE((*root)->MakeDir("d", 0700).ok());
  }
  EXPECT_THAT(Names("/r"), ElementsAre("d"));
}

TEST_F(MemFileSystemTest, InodesAndTimes) {
  ASSERT_TRUE(Write("f", "one").ok());
  auto first = root_->Stat("f");
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ((*first)->mtime_ns, kMtimeNs);
  ASSERT_TRUE(Write("g", "two").ok());
  auto other = root_->Stat("g");
  EXPECT_NE((**other).inode, (**first).inode);
  ASSERT_TRUE(Write("f", "one").ok());  // same contents, mode and mtime: a new file
  auto second = root_->Stat("f");
  EXPECT_NE((**second).inode, (**first).inode);
  EXPECT_GT((**second).ctime_ns, (**first).ctime_ns);
  EXPECT_FALSE(SameFile(**first, **second));
  // Edited in place by another program: same inode, new mtime and ctime.
  ASSERT_TRUE(fs_.WriteFile("/r/f", "edited").ok());
  auto edited = root_->Stat("f");
  EXPECT_EQ((**edited).inode, (**second).inode);
  EXPECT_GT((**edited).ctime_ns, (**second).ctime_ns);
  EXPECT_NE((**edited).mtime_ns, kMtimeNs);
  // A rename moves ctime, not mtime.
  ASSERT_TRUE(root_->Rename("f", "h", {}, {.must_be_absent = true}).ok());
  auto renamed = root_->Stat("h");
  EXPECT_EQ((**renamed).inode, (**edited).inode);
  EXPECT_EQ((**renamed).mtime_ns, (**edited).mtime_ns);
  EXPECT_GT((**renamed).ctime_ns, (**edited).ctime_ns);
}

TEST_F(MemFileSystemTest, ReaderKeepsTheFileItOpened) {
  ASSERT_TRUE(Write("f", "old contents").ok());
  auto reader = root_->OpenForRead("f");
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE(Write("f", "new").ok());
  char buffer[64];
  auto n = (*reader)->Read(buffer, sizeof(buffer));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buffer, *n), "old contents");
  n = (*reader)->ReadAt(4, buffer, 3);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buffer, *n), "con");
}

TEST_F(MemFileSystemTest, CrashKeepsWhatWasSyncedOnly) {
  ASSERT_TRUE(Write("durable", "replaced and synced").ok());
  ASSERT_TRUE(root_->MakeDir("dir", 0700).ok());
  auto pending = WriteTemp("unsynced", "never flushed");
  ASSERT_TRUE(pending.ok());
  ASSERT_TRUE(fs_.WriteFile("/r/by-user", "no fsync").ok());
  ASSERT_TRUE(fs_.WriteFile("/r/synced-by-user", "then SyncAll").ok());
  ASSERT_TRUE(fs_.WriteFile("/r/durable", "edited in place, no fsync").ok());
  auto stat = fs_.Stat("/r/durable");
  fs_.Crash();
  pending->reset();  // belongs to the crashed process: nothing happens
  EXPECT_THAT(Names("/r"), ElementsAre("dir", "durable"));
  EXPECT_EQ(Read("/r/durable"), "replaced and synced");
  EXPECT_EQ((**fs_.Stat("/r/durable")).inode, (**stat).inode);
  EXPECT_EQ((**fs_.Stat("/r/dir")).mode, 0700u);

  absl::Status stale = root_->Stat("durable").status();
  EXPECT_TRUE(absl::IsUnavailable(stale)) << stale;
  Reopen();
  ASSERT_TRUE(fs_.WriteFile("/r/synced-by-user", "then SyncAll").ok());
  fs_.SyncAll();
  fs_.Crash();
  EXPECT_EQ(Read("/r/synced-by-user"), "then SyncAll");
}

TEST_F(MemFileSystemTest, CrashBringsBackWhatWasRemovedWithoutSync) {
  ASSERT_TRUE(root_->MakeDir("d/e", 0755).ok());
  ASSERT_TRUE(Write("d/e/f", "x").ok());
  ASSERT_TRUE(fs_.RemoveAll("/r/d").ok());
  EXPECT_THAT(Names("/r"), IsEmpty());
  fs_.Crash();
  Reopen();
  EXPECT_EQ(Read("/r/d/e/f"), "x");
  ASSERT_TRUE(Write("d/e/g", "usable again").ok());
  EXPECT_THAT(Names("/r/d/e"), ElementsAre("f", "g"));
}

TEST_F(MemFileSystemTest, SyncPathMakesOnePathDurableAndNothingBeside) {
  ASSERT_TRUE(root_->MakeDir("gone", 0755).ok());
  fs_.SyncAll();
  ASSERT_TRUE(fs_.RemoveAll("/r/gone").ok());
  fs_.SyncPath("/r/gone");  // missing: the removal is made durable
  ASSERT_TRUE(fs_.WriteFile("/r/new/deep/file", "an editor's fsync").ok());
  ASSERT_TRUE(fs_.WriteFile("/r/new/other", "not synced").ok());
  fs_.SyncPath("/r/new/deep/file");
  fs_.Crash();
  EXPECT_EQ(Read("/r/new/deep/file"), "an editor's fsync");
  // The entry of "other" was made durable with its directory, its data was not.
  EXPECT_EQ(Read("/r/new/other"), "");
  EXPECT_THAT(Names("/r"), ElementsAre("new"));
}

TEST_F(MemFileSystemTest, CrashDuringABatchLeavesEachTargetOldOrNew) {
  ASSERT_TRUE(Write("a", "old a").ok());
  ASSERT_TRUE(Write("b", "old b").ok());
  auto pa = WriteTemp("a", "new a");
  auto pb = WriteTemp("b", "new b");
  ASSERT_TRUE(pa.ok() && pb.ok());
  ASSERT_TRUE(root_->SyncAll().ok());
  ASSERT_TRUE(root_->CommitTemp(**pa, {}).ok());
  ASSERT_TRUE(root_->CommitTemp(**pb, {}).ok());
  EXPECT_EQ(Read("/r/a"), "new a");
  fs_.Crash();  // before the second SyncAll: the renames are undone
  EXPECT_EQ(Read("/r/a"), "old a");
  EXPECT_EQ(Read("/r/b"), "old b");
  // The temporary files were durable: left over, as on disk, for the scan to remove.
  std::vector<std::string> names = Names("/r");
  ASSERT_EQ(names.size(), 4u);
  EXPECT_TRUE(RootDir::IsTempName(names[0]) && RootDir::IsTempName(names[1]));

  Reopen();
  auto pc = WriteTemp("a", "newer a");
  ASSERT_TRUE(pc.ok());
  ASSERT_TRUE(root_->SyncAll().ok());
  ASSERT_TRUE(root_->CommitTemp(**pc, {}).ok());
  ASSERT_TRUE(root_->SyncAll().ok());
  fs_.Crash();
  EXPECT_EQ(Read("/r/a"), "newer a");
}

TEST_F(MemFileSystemTest, UnsyncedDirectoriesAreDurableOnlyAfterSyncAll) {
  ASSERT_TRUE(root_->MakeDirUnsynced("made/deep", 0700).ok());
  auto pending = WriteTemp("parents/of/temp", "x");
  ASSERT_TRUE(pending.ok());
  pending->reset();
  EXPECT_THAT(Names("/r"), ElementsAre("made", "parents"));
  fs_.Crash();  // no flush: neither the directories nor their parents were durable
  EXPECT_THAT(Names("/r"), IsEmpty());

  Reopen();
  ASSERT_TRUE(root_->MakeDirUnsynced("made/deep", 0700).ok());
  auto again = WriteTemp("parents/of/temp", "x");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(root_->SyncAll().ok());
  again->reset();
  ASSERT_TRUE(root_->SyncAll().ok());
  fs_.Crash();
  EXPECT_THAT(Names("/r"), ElementsAre("made", "parents"));
  EXPECT_THAT(Names("/r/made"), ElementsAre("deep"));
  EXPECT_EQ((**fs_.Stat("/r/made/deep")).mode, 0700u);
  EXPECT_THAT(Names("/r/parents"), ElementsAre("of"));
}

TEST_F(MemFileSystemTest, FailedDirectorySyncLeavesTheRenameDoneButNotDurable) {
  ASSERT_TRUE(Write("f", "old").ok());
  // The file's fsync passes; the directory's, after the rename, fails.
  fs_.InjectFault({.op = FsOp::kSync,
                   .path_prefix = "/r",
                   .status = absl::DataLossError("I/O error"),
                   .skip = 1});
  absl::Status status = Write("f", "new");
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("fsync /r"));
  EXPECT_EQ(Read("/r/f"), "new");
  EXPECT_EQ(fs_.faults_fired(), 1u);
  fs_.Crash();
  EXPECT_EQ(Read("/r/f"), "old");
}

TEST_F(MemFileSystemTest, CrashFindingAnEntryTwiceKeepsTheFirst) {
  ASSERT_TRUE(Write("a/f", "x").ok());
  ASSERT_TRUE(root_->MakeDir("b", 0755).ok());
  // Renamed; "b" is synced, then the sync of "a" fails: both list f durably.
  fs_.InjectFault(
      {.op = FsOp::kSync, .path_prefix = "/r/a", .status = absl::DataLossError("EIO")});
  EXPECT_TRUE(absl::IsDataLoss(root_->Rename("a/f", "b/f", {}, {})));
  fs_.Crash();
  EXPECT_THAT(Names("/r/a"), ElementsAre("f"));
  EXPECT_THAT(Names("/r/b"), IsEmpty());
}

TEST_F(MemFileSystemTest, DiskFullDuringAWriteLeavesTheTargetAsItWas) {
  ASSERT_TRUE(Write("f", "kept").ok());
  auto before = root_->Stat("f");
  fs_.InjectFault({.op = FsOp::kWrite,
                   .path_prefix = "/r/f",
                   .status = absl::ResourceExhaustedError("No space left on device")});
  absl::Status status = Write("f", "lost");
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_EQ(status.message(), "write /r/f: No space left on device");
  EXPECT_EQ(Read("/r/f"), "kept");
  EXPECT_TRUE(SameFile(**root_->Stat("f"), **before));
  EXPECT_THAT(Names("/r"), ElementsAre("f"));  // no temporary file left
  EXPECT_TRUE(Write("f", "fits now").ok());    // the fault fired once
  EXPECT_EQ(Read("/r/f"), "fits now");
}

TEST_F(MemFileSystemTest, FaultsMatchOperationPathSkipAndCount) {
  fs_.InjectFault({.op = FsOp::kMkdir,
                   .path_prefix = "/r/a",
                   .status = absl::PermissionDeniedError("read-only"),
                   .skip = 1,
                   .count = 2});
  EXPECT_TRUE(root_->MakeDir("ab", 0755).ok());  // not below /r/a
  EXPECT_TRUE(root_->MakeDir("a", 0755).ok());   // skipped
  EXPECT_TRUE(absl::IsPermissionDenied(root_->MakeDir("a/x", 0755)));
  EXPECT_TRUE(absl::IsPermissionDenied(Write("a/y/z", "x")));  // creating a/y
  EXPECT_TRUE(root_->MakeDir("a/x", 0755).ok());               // count used up
  EXPECT_EQ(fs_.faults_fired(), 2u);

  fs_.InjectFault({.op = FsOp::kAny,
                   .path_prefix = "",
                   .status = absl::InternalError("EIO"),
                   .skip = 0,
                   .count = -1});
  EXPECT_FALSE(root_->Stat("a").ok());
  EXPECT_FALSE(root_->OpenForRead("a").ok());
  fs_.ClearFaults();
  EXPECT_TRUE(root_->Stat("a").ok());
}

TEST_F(MemFileSystemTest, ReadFaultReachesTheReader) {
  ASSERT_TRUE(Write("f", "data").ok());
  auto reader = root_->OpenForRead("f");
  ASSERT_TRUE(reader.ok());
  fs_.InjectFault({.op = FsOp::kRead,
                   .path_prefix = "",
                   .status = absl::DataLossError("bad sector")});
  char buffer[8];
  EXPECT_TRUE(absl::IsDataLoss((*reader)->Read(buffer, sizeof(buffer)).status()));
  EXPECT_TRUE((*reader)->Read(buffer, sizeof(buffer)).ok());
}

TEST_F(MemFileSystemTest, ConcurrentReadersAndWriters) {
  ASSERT_TRUE(Write("f", std::string(10000, 'a')).ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto reader = root_->OpenForRead("f");
        if (!reader.ok()) continue;
        std::string data(20000, '\0');
        auto n = (*reader)->Read(data.data(), data.size());
        ASSERT_TRUE(n.ok());
        data.resize(*n);
        // Every read sees one whole version.
        ASSERT_EQ(data.find_first_not_of(data[0]), std::string::npos);
      }
    });
  }
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(Write("f", std::string(10000, static_cast<char>('a' + i % 26))).ok());
  }
  stop = true;
  for (std::thread& t : readers) t.join();
}

}  // namespace
}  // namespace ferry::files
