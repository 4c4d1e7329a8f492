#include "src/connectors/files/root_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/connectors/files/path_rules.h"
#include "src/core/strings.h"

namespace ferry::files {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr int64_t kMtimeNs = 1'700'000'000'123'456'789;

std::string MakeTempDir() {
  std::string pattern = (fs::temp_directory_path() / "ferry-root-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    std::abort();
  }
  return pattern;
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) return absl::InternalError(std::strerror(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Writes `data` to `path` outside of RootDir, as another program would.
void WriteRaw(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_TRUE(WriteAll(fd, data).ok());
  ::close(fd);
}

std::string ReadFd(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  ::close(fd);
  return out;
}

// Appends every entry below `dir` (not following links) to `out`, prefixed by `prefix`.
void ListTreeInto(const fs::path& dir, const std::string& prefix,
                  std::vector<std::string>& out) {
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    std::string rel = prefix + entry.path().filename().string();
    out.push_back(rel);
    if (!entry.is_symlink() && entry.is_directory()) {
      ListTreeInto(entry.path(), rel + "/", out);
    }
  }
}

// Every entry below `dir` (not following links), relative to it, sorted.
std::vector<std::string> ListTree(const std::string& dir) {
  std::vector<std::string> out;
  ListTreeInto(dir, "", out);
  std::sort(out.begin(), out.end());
  return out;
}

class RootDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_path_ = MakeTempDir();
    outside_ = MakeTempDir();
    auto root = RootDir::Open(root_path_);
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = std::move(*root);
  }

  void TearDown() override {
    if (check_no_temps_) {
      for (const std::string& rel : ListTree(root_path_)) {
        EXPECT_FALSE(RootDir::IsTempName(fs::path(rel).filename().string()))
            << "left behind: " << rel;
      }
    }
    root_.reset();
    fs::remove_all(root_path_);
    fs::remove_all(outside_);
  }

  std::string P(const std::string& rel) const { return root_path_ + "/" + rel; }

  absl::Status Write(std::string_view rel, std::string data, uint32_t mode = 0644,
                     RootDir::Expect expect = {}) {
    return root_->ReplaceFile(
        rel, [&](int fd) { return WriteAll(fd, data); }, mode, kMtimeNs, expect);
  }

  std::string Read(std::string_view rel) {
    absl::StatusOr<int> fd = root_->OpenForRead(rel);
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? ReadFd(*fd) : "";
  }

  FileStat MustStat(std::string_view rel) {
    absl::StatusOr<std::optional<FileStat>> stat = root_->Stat(rel);
    EXPECT_TRUE(stat.ok()) << stat.status();
    EXPECT_TRUE(stat.ok() && stat->has_value()) << rel << " is missing";
    return stat.ok() && stat->has_value() ? **stat : FileStat{};
  }

  bool Absent(std::string_view rel) {
    absl::StatusOr<std::optional<FileStat>> stat = root_->Stat(rel);
    EXPECT_TRUE(stat.ok()) << stat.status();
    return stat.ok() && !stat->has_value();
  }

  // Visited (path, type) pairs and skipped paths of a full walk.
  struct WalkResult {
    std::vector<std::pair<std::string, FileStat::Type>> visited;
    std::vector<std::string> skipped;
    absl::Status status;
  };
  WalkResult WalkAll(size_t entries_max = 100000) {
    WalkResult result;
    result.status = root_->Walk(
        [&](const std::string& rel, const FileStat& stat) {
          result.visited.emplace_back(rel, stat.type);
        },
        [&](const std::string& rel, const std::string& why) {
          EXPECT_FALSE(why.empty());
          result.skipped.push_back(rel);
        },
        entries_max);
    return result;
  }

  std::string root_path_;
  std::string outside_;
  std::unique_ptr<RootDir> root_;
  bool check_no_temps_ = true;
};

RootDir::Expect MustBeAbsent() { return {.must_be_absent = true}; }
RootDir::Expect Unchanged(const FileStat& stat) { return {.unchanged = stat}; }

TEST(RootDirOpenTest, MissingAndNotADirectory) {
  std::string dir = MakeTempDir();
  EXPECT_TRUE(absl::IsNotFound(RootDir::Open(dir + "/missing").status()));
  WriteRaw(dir + "/file", "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(RootDir::Open(dir + "/file").status()));
  auto root = RootDir::Open(dir);
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)->path(), dir);
  fs::remove_all(dir);
}

TEST(SameFileTest, ComparesEveryField) {
  FileStat a{FileStat::kFile, 10, 20, 30, 0644};
  EXPECT_TRUE(SameFile(a, a));
  for (auto change : std::vector<std::function<void(FileStat&)>>{
           [](FileStat& s) { s.type = FileStat::kSymlink; },
           [](FileStat& s) { ++s.size; }, [](FileStat& s) { ++s.mtime_ns; },
           [](FileStat& s) { ++s.inode; }, [](FileStat& s) { s.mode = 0600; }}) {
    FileStat b = a;
    change(b);
    EXPECT_FALSE(SameFile(a, b));
  }
}

TEST(IsTempNameTest, Prefix) {
  EXPECT_TRUE(RootDir::IsTempName(".ferry-tmp-0123456789abcdef"));
  EXPECT_TRUE(RootDir::IsTempName(".ferry-tmp-"));
  EXPECT_FALSE(RootDir::IsTempName("ferry-tmp-1"));
  EXPECT_FALSE(RootDir::IsTempName("a.ferry-tmp-1"));
}

TEST_F(RootDirTest, WriteReadRoundTripKeepsModeAndMtime) {
  ASSERT_TRUE(Write("a/b/c.txt", "hello", 0640).ok());
  FileStat stat = MustStat("a/b/c.txt");
  EXPECT_EQ(stat.type, FileStat::kFile);
  EXPECT_EQ(stat.size, 5u);
  EXPECT_EQ(stat.mode, 0640u);
  EXPECT_EQ(stat.mtime_ns, kMtimeNs);
  EXPECT_EQ(Read("a/b/c.txt"), "hello");
  EXPECT_EQ(MustStat("a").type, FileStat::kDir);
  EXPECT_EQ(MustStat("a/b").type, FileStat::kDir);
}

TEST_F(RootDirTest, ReplaceIsANewFile) {
  ASSERT_TRUE(Write("f", "old contents").ok());
  FileStat before = MustStat("f");
  ASSERT_TRUE(Write("f", "new", 0600, Unchanged(before)).ok());
  FileStat after = MustStat("f");
  EXPECT_EQ(Read("f"), "new");
  EXPECT_NE(after.inode, before.inode);
  EXPECT_EQ(after.mode, 0600u);
  EXPECT_FALSE(SameFile(before, after));
}

TEST_F(RootDirTest, MtimeBeforeEpochAndExecutableMode) {
  ASSERT_TRUE(root_
                  ->ReplaceFile("old", [](int) { return absl::OkStatus(); }, 0755,
                                -1'500'000'000'250'000'000, {})
                  .ok());
  FileStat stat = MustStat("old");
  EXPECT_EQ(stat.mtime_ns, -1'500'000'000'250'000'000);
  EXPECT_EQ(stat.mode, 0755u);
  EXPECT_EQ(stat.size, 0u);
}

TEST_F(RootDirTest, SetIdBitsAreNeverSet) {
  ASSERT_TRUE(Write("suid", "x", 06755).ok());
  EXPECT_EQ(MustStat("suid").mode, 0755u);
  EXPECT_TRUE(absl::IsInvalidArgument(Write("bad", "x", 010644)));
  EXPECT_TRUE(Absent("bad"));
}

TEST_F(RootDirTest, ChangedSinceStatIsAborted) {
  ASSERT_TRUE(Write("f", "v1").ok());
  FileStat scanned = MustStat("f");
  WriteRaw(P("f"), "edited by the user");
  absl::Status status = Write("f", "from a peer", 0644, Unchanged(scanned));
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("changed since scan"));
  EXPECT_EQ(Read("f"), "edited by the user");
}

TEST_F(RootDirTest, TwoPhaseBatchWritesAndChecksAtCommit) {
  ASSERT_TRUE(Write("a", "old a").ok());
  ASSERT_TRUE(Write("b", "old b").ok());
  FileStat a = MustStat("a"), b = MustStat("b");
  auto write = [&](std::string_view rel, std::string data,
                   const RootDir::Expect& expect) {
    return root_->WriteTemp(
        rel, [data](int fd) { return WriteAll(fd, data); }, 0600, kMtimeNs, expect);
  };
  auto pa = write("a", "new a", Unchanged(a));
  auto pb = write("b", "new b", Unchanged(b));
  auto pc = write("dir/c", "new c", MustBeAbsent());
  auto pd = write("d", "never committed", MustBeAbsent());
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok() && pd.ok());
  EXPECT_EQ(Read("a"), "old a");  // nothing is in place before the commit
  ASSERT_TRUE(root_->SyncAll().ok());
  WriteRaw(P("b"), "edited by the user meanwhile");
  EXPECT_TRUE(root_->CommitTemp(**pa, Unchanged(a)).ok());
  absl::Status changed = root_->CommitTemp(**pb, Unchanged(b));
  EXPECT_TRUE(absl::IsAborted(changed)) << changed;
  EXPECT_TRUE(root_->CommitTemp(**pc, MustBeAbsent()).ok());
  ASSERT_TRUE(root_->SyncAll().ok());
  pa->reset();
  pb->reset();
  pc->reset();
  pd->reset();  // dropped without a commit: its temporary file goes
  EXPECT_EQ(Read("a"), "new a");
  EXPECT_EQ(MustStat("a").mode, 0600u);
  EXPECT_EQ(Read("b"), "edited by the user meanwhile");
  EXPECT_EQ(Read("dir/c"), "new c");
  EXPECT_TRUE(Absent("d"));
}

TEST_F(RootDirTest, DeletedSinceStatIsAborted) {
  ASSERT_TRUE(Write("f", "v1").ok());
  FileStat scanned = MustStat("f");
  ASSERT_EQ(::unlink(P("f").c_str()), 0);
  EXPECT_TRUE(absl::IsAborted(Write("f", "v2", 0644, Unchanged(scanned))));
  EXPECT_TRUE(Absent("f"));
}

TEST_F(RootDirTest, MustBeAbsent) {
  ASSERT_TRUE(Write("f", "mine", 0644, MustBeAbsent()).ok());
  EXPECT_TRUE(absl::IsAborted(Write("f", "theirs", 0644, MustBeAbsent())));
  EXPECT_EQ(Read("f"), "mine");
}

TEST_F(RootDirTest, ChangeDuringWriteIsAborted) {
  // The target appears while the new contents are being written.
  absl::Status status = root_->ReplaceFile(
      "f",
      [&](int fd) {
        WriteRaw(P("f"), "appeared");
        return WriteAll(fd, "late");
      },
      0644, kMtimeNs, MustBeAbsent());
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(Read("f"), "appeared");

  FileStat scanned = MustStat("f");
  status = root_->ReplaceFile(
      "f",
      [&](int fd) {
        WriteRaw(P("f"), "edited meanwhile");
        return WriteAll(fd, "late");
      },
      0644, kMtimeNs, Unchanged(scanned));
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(Read("f"), "edited meanwhile");
}

TEST_F(RootDirTest, DirectoryAppearingDuringWriteIsRefused) {
  absl::Status status = root_->ReplaceFile("f",
                                           [&](int fd) {
                                             fs::create_directory(P("f"));
                                             return WriteAll(fd, "late");
                                           },
                                           0644, kMtimeNs, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(ListTree(root_path_), ElementsAre("f"));
}

TEST_F(RootDirTest, ConflictingExpectIsInvalid) {
  RootDir::Expect both{.must_be_absent = true, .unchanged = FileStat{}};
  EXPECT_TRUE(absl::IsInvalidArgument(Write("f", "x", 0644, both)));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->Remove("f", both)));
}

TEST_F(RootDirTest, WriteErrorLeavesTargetAndNoTemp) {
  ASSERT_TRUE(Write("f", "kept").ok());
  absl::Status status = root_->ReplaceFile("f",
                                           [](int fd) {
                                             EXPECT_TRUE(WriteAll(fd, "partial").ok());
                                             return absl::DataLossError("chunk missing");
                                           },
                                           0644, kMtimeNs, {});
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_EQ(Read("f"), "kept");
  EXPECT_THAT(ListTree(root_path_), ElementsAre("f"));
}

TEST_F(RootDirTest, DirectoryTargetRefused) {
  ASSERT_TRUE(root_->MakeDir("d", 0755).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(Write("d", "x")));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReplaceSymlink("d", "t", {})));
  EXPECT_EQ(MustStat("d").type, FileStat::kDir);
}

TEST_F(RootDirTest, FileAsParentRefused) {
  ASSERT_TRUE(Write("f", "x").ok());
  absl::Status status = Write("f/g", "y");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("f/d", 0755)));
  EXPECT_TRUE(Absent("f/g"));
  EXPECT_TRUE(root_->Remove("f/g", {}).ok());
}

TEST_F(RootDirTest, InvalidPathsRefusedEverywhere) {
  for (std::string_view bad : {"../x", "/etc/passwd", "a/../../x", "a//b", "", "a\\b"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(root_->Stat(bad).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->OpenForRead(bad).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->ReadLink(bad).status()));
    EXPECT_TRUE(absl::IsInvalidArgument(Write(bad, "x")));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink(bad, "t", {})));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->MakeDir(bad, 0755)));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->Remove(bad, {})));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->Rename(bad, "ok", {}, {})));
    EXPECT_TRUE(absl::IsInvalidArgument(root_->Rename("ok", bad, {}, {})));
  }
  EXPECT_THAT(ListTree(root_path_), IsEmpty());
  EXPECT_THAT(ListTree(outside_), IsEmpty());
}

TEST_F(RootDirTest, SymlinkInPathToOutsideIsNeverFollowed) {
  WriteRaw(outside_ + "/secret", "do not touch");
  ASSERT_EQ(::symlink(outside_.c_str(), P("link").c_str()), 0);

  absl::Status status = Write("link/x", "escaped");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("link/x: link is a symbolic link"));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReplaceSymlink("link/y", "/etc", {})));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("link/sub", 0755)));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("link", 0755)));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("link/secret").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReadLink("link/secret").status()));
  EXPECT_TRUE(Absent("link/secret"));
  EXPECT_TRUE(root_->Remove("link/secret", {}).ok());
  ASSERT_TRUE(Write("mine", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->Rename("mine", "link/mine", {}, {})));
  EXPECT_TRUE(absl::IsNotFound(root_->Rename("link/secret", "stolen", {}, {})));

  EXPECT_THAT(ListTree(outside_), ElementsAre("secret"));
  std::string contents = ReadFd(::open((outside_ + "/secret").c_str(), O_RDONLY));
  EXPECT_EQ(contents, "do not touch");
  EXPECT_EQ(MustStat("link").type, FileStat::kSymlink);
  EXPECT_EQ(*root_->ReadLink("link"), outside_);
}

TEST_F(RootDirTest, SymlinkLeafIsReplacedNotFollowed) {
  WriteRaw(outside_ + "/target", "outside");
  ASSERT_EQ(::symlink((outside_ + "/target").c_str(), P("leaf").c_str()), 0);
  EXPECT_EQ(MustStat("leaf").type, FileStat::kSymlink);
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("leaf").status()));
  ASSERT_TRUE(Write("leaf", "inside").ok());
  EXPECT_EQ(MustStat("leaf").type, FileStat::kFile);
  EXPECT_EQ(Read("leaf"), "inside");
  EXPECT_EQ(ReadFd(::open((outside_ + "/target").c_str(), O_RDONLY)), "outside");
}

TEST_F(RootDirTest, DirectorySwappedForSymlinkAfterOpen) {
  ASSERT_TRUE(root_->MakeDir("a/b", 0755).ok());
  ASSERT_TRUE(Write("a/b/f", "x").ok());
  // Another program swaps a/b for a link out of the folder.
  ASSERT_EQ(::rename(P("a/b").c_str(), P("a/old").c_str()), 0);
  ASSERT_EQ(::symlink(outside_.c_str(), P("a/b").c_str()), 0);

  absl::Status status = Write("a/b/f", "escaped");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("a/b"));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("a/b/c", 0755)));
  EXPECT_TRUE(Absent("a/b/f"));
  EXPECT_THAT(ListTree(outside_), IsEmpty());
  EXPECT_EQ(Read("a/old/f"), "x");
}

TEST_F(RootDirTest, RootItselfMayBeReachedThroughALink) {
  std::string link = outside_ + "/root-link";
  ASSERT_EQ(::symlink(root_path_.c_str(), link.c_str()), 0);
  auto via_link = RootDir::Open(link);
  ASSERT_TRUE(via_link.ok()) << via_link.status();
  ASSERT_TRUE((*via_link)->MakeDir("d", 0700).ok());
  EXPECT_EQ(MustStat("d").mode, 0700u);
}

TEST_F(RootDirTest, SymlinkRoundTripStoredAsIs) {
  ASSERT_TRUE(root_->ReplaceSymlink("l", "../../etc/passwd", MustBeAbsent()).ok());
  EXPECT_EQ(MustStat("l").type, FileStat::kSymlink);
  EXPECT_EQ(*root_->ReadLink("l"), "../../etc/passwd");
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("l").status()));
  FileStat before = MustStat("l");
  ASSERT_TRUE(root_->ReplaceSymlink("l", "other target", Unchanged(before)).ok());
  EXPECT_EQ(*root_->ReadLink("l"), "other target");
  EXPECT_TRUE(absl::IsAborted(root_->ReplaceSymlink("l", "x", MustBeAbsent())));
  EXPECT_TRUE(absl::IsAborted(root_->ReplaceSymlink("l", "x", Unchanged(before))));
  EXPECT_EQ(*root_->ReadLink("l"), "other target");
}

TEST_F(RootDirTest, SymlinkTargetsBounded) {
  using namespace std::string_literals;
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", "", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", "a\0b"s, {})));
  std::string longest(kSymlinkTargetBytesMax, 't');
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", longest + "t", {})));
  EXPECT_TRUE(Absent("l"));
  ASSERT_TRUE(root_->ReplaceSymlink("l", longest, {}).ok());
  EXPECT_EQ(*root_->ReadLink("l"), longest);
}

TEST_F(RootDirTest, ReadLinkOfFileRefused) {
  ASSERT_TRUE(Write("f", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReadLink("f").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->ReadLink("missing").status()));
}

TEST_F(RootDirTest, OpenForReadRefusesNonFiles) {
  ASSERT_EQ(::mkfifo(P("fifo").c_str(), 0644), 0);
  ASSERT_TRUE(root_->MakeDir("d", 0755).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("fifo").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("d").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->OpenForRead("missing").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->OpenForRead("missing/f").status()));
  EXPECT_EQ(MustStat("fifo").type, FileStat::kOther);
}

TEST_F(RootDirTest, OpenForReadIsBlocking) {
  ASSERT_TRUE(Write("f", "x").ok());
  absl::StatusOr<int> fd = root_->OpenForRead("f");
  ASSERT_TRUE(fd.ok());
  int flags = ::fcntl(*fd, F_GETFL);
  EXPECT_EQ(flags & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(*fd);
}

TEST_F(RootDirTest, StatOfMissing) {
  EXPECT_TRUE(Absent("nothing"));
  EXPECT_TRUE(Absent("no/such/parent"));
}

TEST_F(RootDirTest, MakeDir) {
  ASSERT_TRUE(root_->MakeDir("x/y/z", 0700).ok());
  EXPECT_EQ(MustStat("x/y/z").mode, 0700u);
  EXPECT_EQ(MustStat("x").type, FileStat::kDir);
  ASSERT_TRUE(root_->MakeDir("x/y/z", 0750).ok());
  EXPECT_EQ(MustStat("x/y/z").mode, 0750u);
  ASSERT_TRUE(Write("f", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("f", 0755)));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->MakeDir("g", 040755)));
}

TEST_F(RootDirTest, RemoveFileLinkAndEmptyDir) {
  ASSERT_TRUE(Write("f", "x").ok());
  WriteRaw(outside_ + "/target", "t");
  ASSERT_TRUE(root_->ReplaceSymlink("l", outside_ + "/target", {}).ok());
  ASSERT_TRUE(root_->MakeDir("d", 0755).ok());
  EXPECT_TRUE(root_->Remove("f", Unchanged(MustStat("f"))).ok());
  EXPECT_TRUE(root_->Remove("l", {}).ok());
  EXPECT_TRUE(root_->Remove("d", {}).ok());
  EXPECT_THAT(ListTree(root_path_), IsEmpty());
  EXPECT_THAT(ListTree(outside_), ElementsAre("target"));
  EXPECT_TRUE(root_->Remove("f", {}).ok());
  EXPECT_TRUE(root_->Remove("no/parent", {}).ok());
}

TEST_F(RootDirTest, RemoveRefusals) {
  ASSERT_TRUE(Write("d/f", "x").ok());
  absl::Status status = root_->Remove("d", {});
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("not empty"));
  FileStat scanned = MustStat("d/f");
  WriteRaw(P("d/f"), "edited");
  EXPECT_TRUE(absl::IsAborted(root_->Remove("d/f", Unchanged(scanned))));
  EXPECT_TRUE(absl::IsAborted(root_->Remove("d/f", MustBeAbsent())));
  EXPECT_EQ(Read("d/f"), "edited");
}

TEST_F(RootDirTest, RenameCreatesParents) {
  ASSERT_TRUE(Write("f", "x").ok());
  FileStat before = MustStat("f");
  ASSERT_TRUE(root_->Rename("f", "p/q/g", Unchanged(before), MustBeAbsent()).ok());
  EXPECT_TRUE(Absent("f"));
  EXPECT_TRUE(SameFile(MustStat("p/q/g"), before));
  ASSERT_TRUE(root_->Rename("p", "r", {}, MustBeAbsent()).ok());
  EXPECT_EQ(Read("r/q/g"), "x");
}

TEST_F(RootDirTest, RenameOverExistingTarget) {
  ASSERT_TRUE(Write("a", "A").ok());
  ASSERT_TRUE(Write("b", "B").ok());
  absl::Status status = root_->Rename("a", "b", {}, MustBeAbsent());
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(Read("a"), "A");
  EXPECT_EQ(Read("b"), "B");
  EXPECT_TRUE(absl::IsAborted(root_->Rename("a", "b", {}, Unchanged(MustStat("a")))));
  ASSERT_TRUE(root_->Rename("a", "b", {}, Unchanged(MustStat("b"))).ok());
  EXPECT_EQ(Read("b"), "A");
  EXPECT_TRUE(Absent("a"));
}

TEST_F(RootDirTest, RenameRefusals) {
  EXPECT_TRUE(absl::IsNotFound(root_->Rename("missing", "x", {}, {})));
  EXPECT_TRUE(absl::IsNotFound(root_->Rename("no/parent", "x", {}, {})));
  ASSERT_TRUE(Write("d/f", "x").ok());
  FileStat scanned = MustStat("d/f");
  WriteRaw(P("d/f"), "edited");
  EXPECT_TRUE(absl::IsAborted(root_->Rename("d/f", "g", Unchanged(scanned), {})));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->Rename("d", "d/e", {}, {})));
  ASSERT_TRUE(Write("e/g", "y").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->Rename("d", "e", {}, {})));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->Rename("d/f", "e", {}, {})));
  EXPECT_THAT(ListTree(root_path_), ElementsAre("d", "d/f", "e", "e/g"));
}

TEST_F(RootDirTest, WalkOrderTypesAndNoSymlinkDescent) {
  ASSERT_TRUE(Write("b.txt", "x").ok());
  ASSERT_TRUE(Write("a/z", "x").ok());
  ASSERT_TRUE(Write("a/y/deep", "x").ok());
  ASSERT_TRUE(Write("B", "x").ok());
  ASSERT_TRUE(Write("a b", "x").ok());
  ASSERT_TRUE(root_->ReplaceSymlink("link_to_dir", "a", {}).ok());
  WriteRaw(outside_ + "/o", "x");
  ASSERT_TRUE(root_->ReplaceSymlink("link_out", outside_, {}).ok());
  ASSERT_TRUE(root_->MakeDir("empty", 0755).ok());
  ASSERT_EQ(::mkfifo(P("fifo").c_str(), 0644), 0);

  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  EXPECT_THAT(
      walk.visited,
      ElementsAre(Pair("B", FileStat::kFile), Pair("a", FileStat::kDir),
                  Pair("a/y", FileStat::kDir), Pair("a/y/deep", FileStat::kFile),
                  Pair("a/z", FileStat::kFile), Pair("a b", FileStat::kFile),
                  Pair("b.txt", FileStat::kFile), Pair("empty", FileStat::kDir),
                  Pair("fifo", FileStat::kOther), Pair("link_out", FileStat::kSymlink),
                  Pair("link_to_dir", FileStat::kSymlink)));
  EXPECT_THAT(walk.skipped, IsEmpty());
}

TEST_F(RootDirTest, WalkSkipsInvalidNames) {
  WriteRaw(P("back\\slash"), "x");
  WriteRaw(P("bad\xff utf8"), "x");
  WriteRaw(P("tab\there"), "x");
  ASSERT_EQ(::mkdir(P("dir\x01").c_str(), 0755), 0);
  WriteRaw(P("dir\x01/inside"), "x");
  WriteRaw(P("ok"), "x");
  WriteRaw(P("\xc3\xa4"), "x");

  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  EXPECT_THAT(walk.visited, ElementsAre(Pair("ok", FileStat::kFile),
                                        Pair("\xc3\xa4", FileStat::kFile)));
  EXPECT_THAT(walk.skipped,
              ElementsAre("back\\slash", "bad\xff utf8", "dir\x01", "tab\there"));
}

TEST_F(RootDirTest, WalkVisitsTempNames) {
  check_no_temps_ = false;
  WriteRaw(P(".ferry-tmp-0123456789abcdef"), "stale");
  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok());
  EXPECT_THAT(walk.visited,
              ElementsAre(Pair(".ferry-tmp-0123456789abcdef", FileStat::kFile)));
  EXPECT_TRUE(root_->Remove(".ferry-tmp-0123456789abcdef", {}).ok());
}

TEST_F(RootDirTest, WalkStopsAtDepthLimit) {
  std::string deep;
  for (size_t i = 0; i < kPathDepthMax + 2; ++i) deep += (i == 0 ? "d" : "/d");
  fs::create_directories(P(deep));
  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  ASSERT_EQ(walk.visited.size(), kPathDepthMax);
  EXPECT_EQ(walk.visited.back().first, deep.substr(0, 2 * kPathDepthMax - 1));
  ASSERT_EQ(walk.skipped.size(), 1u);
  EXPECT_EQ(walk.skipped[0], deep.substr(0, 2 * kPathDepthMax + 1));
}

TEST_F(RootDirTest, WalkEntriesBounded) {
  for (int i = 0; i < 10; ++i) WriteRaw(P(StrCat("f", i)), "x");
  EXPECT_TRUE(WalkAll(10).status.ok());
  WalkResult walk = WalkAll(9);
  EXPECT_TRUE(absl::IsResourceExhausted(walk.status)) << walk.status;
  EXPECT_THAT(walk.visited, IsEmpty());
}

TEST_F(RootDirTest, WalkTwiceAndWithoutSkippedCallback) {
  WriteRaw(P("bad\\name"), "x");
  WriteRaw(P("good"), "x");
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> seen;
    ASSERT_TRUE(
        root_
            ->Walk([&](const std::string& rel, const FileStat&) { seen.push_back(rel); },
                   nullptr, 100)
            .ok());
    EXPECT_THAT(seen, ElementsAre("good"));
  }
}

}  // namespace
}  // namespace ferry::files
