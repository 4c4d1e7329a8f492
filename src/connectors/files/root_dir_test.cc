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
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/connectors/files/disk_root_dir.h"
#include "src/connectors/files/mem_file_system.h"
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

// Writes `data` to `path` on disk outside of RootDir, as another program would.
void DiskWriteRaw(const std::string& path, std::string_view data) {
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

// A file system under test, with the access another program on the machine has.
// Paths are absolute in that file system.
class TestFs {
 public:
  virtual ~TestFs() = default;
  virtual std::string MakeDir() = 0;  // a new empty directory
  virtual absl::StatusOr<std::unique_ptr<RootDir>> Open(const std::string& path) = 0;
  virtual void WriteRaw(const std::string& path, std::string_view data) = 0;
  virtual void MkdirRaw(const std::string& path) = 0;  // with parents
  virtual void SymlinkRaw(const std::string& target, const std::string& path) = 0;
  virtual void UnlinkRaw(const std::string& path) = 0;
  virtual void RenameRaw(const std::string& from, const std::string& to) = 0;
  virtual void MkfifoRaw(const std::string& path) = 0;
  virtual std::string ReadRaw(const std::string& path) = 0;
  // Every entry below `dir` (not following links), relative to it, sorted.
  virtual std::vector<std::string> ListTree(const std::string& dir) = 0;
  virtual void RemoveAll(const std::string& path) = 0;
};

class DiskFs final : public TestFs {
 public:
  std::string MakeDir() override { return MakeTempDir(); }
  absl::StatusOr<std::unique_ptr<RootDir>> Open(const std::string& path) override {
    return RootDir::Open(path);
  }
  void WriteRaw(const std::string& path, std::string_view data) override {
    DiskWriteRaw(path, data);
  }
  void MkdirRaw(const std::string& path) override { fs::create_directories(path); }
  void SymlinkRaw(const std::string& target, const std::string& path) override {
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << std::strerror(errno);
  }
  void UnlinkRaw(const std::string& path) override {
    ASSERT_EQ(::unlink(path.c_str()), 0) << std::strerror(errno);
  }
  void RenameRaw(const std::string& from, const std::string& to) override {
    ASSERT_EQ(::rename(from.c_str(), to.c_str()), 0) << std::strerror(errno);
  }
  void MkfifoRaw(const std::string& path) override {
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << std::strerror(errno);
  }
  std::string ReadRaw(const std::string& path) override {
    return ReadFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  }
  std::vector<std::string> ListTree(const std::string& dir) override {
    std::vector<std::string> out;
    ListTreeInto(dir, "", out);
    std::sort(out.begin(), out.end());
    return out;
  }
  void RemoveAll(const std::string& path) override { fs::remove_all(path); }
};

class MemFs final : public TestFs {
 public:
  std::string MakeDir() override {
    std::string path = StrCat("/dir", ++dirs_);
    EXPECT_TRUE(fs_.Mkdir(path).ok());
    return path;
  }
  absl::StatusOr<std::unique_ptr<RootDir>> Open(const std::string& path) override {
    return fs_.OpenRoot(path);
  }
  void WriteRaw(const std::string& path, std::string_view data) override {
    ASSERT_TRUE(fs_.WriteFile(path, data).ok()) << path;
  }
  void MkdirRaw(const std::string& path) override {
    ASSERT_TRUE(fs_.Mkdir(path).ok()) << path;
  }
  void SymlinkRaw(const std::string& target, const std::string& path) override {
    ASSERT_TRUE(fs_.Symlink(path, target).ok()) << path;
  }
  void UnlinkRaw(const std::string& path) override {
    ASSERT_TRUE(fs_.RemoveAll(path).ok()) << path;
  }
  void RenameRaw(const std::string& from, const std::string& to) override {
    ASSERT_TRUE(fs_.Rename(from, to).ok()) << from;
  }
  void MkfifoRaw(const std::string& path) override {
    ASSERT_TRUE(fs_.MakeFifo(path).ok()) << path;
  }
  std::string ReadRaw(const std::string& path) override {
    absl::StatusOr<std::string> data = fs_.ReadFile(path);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.ok() ? *data : "";
  }
  std::vector<std::string> ListTree(const std::string& dir) override {
    std::vector<std::string> out;
    ListInto(dir, "", out);
    std::sort(out.begin(), out.end());
    return out;
  }
  void RemoveAll(const std::string& path) override { (void)fs_.RemoveAll(path); }

 private:
  void ListInto(const std::string& dir, const std::string& prefix,
                std::vector<std::string>& out) {
    absl::StatusOr<std::vector<std::string>> names = fs_.List(dir);
    ASSERT_TRUE(names.ok()) << names.status();
    for (const std::string& name : *names) {
      out.push_back(prefix + name);
      std::string path = StrCat(dir, "/", name);
      absl::StatusOr<std::optional<FileStat>> stat = fs_.Stat(path);
      if (stat.ok() && stat->has_value() && (*stat)->type == FileStat::kDir) {
        ListInto(path, prefix + name + "/", out);
      }
    }
  }

  MemFileSystem fs_;
  int dirs_ = 0;
};

// Every case runs on the disk and on MemFileSystem.
class RootDirTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "disk") {
      fs_ = std::make_unique<DiskFs>();
    } else {
      fs_ = std::make_unique<MemFs>();
    }
    root_path_ = fs_->MakeDir();
    outside_ = fs_->MakeDir();
    auto root = fs_->Open(root_path_);
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
    fs_->RemoveAll(root_path_);
    fs_->RemoveAll(outside_);
  }

  bool disk() const { return GetParam() == "disk"; }
  void WriteRaw(const std::string& path, std::string_view data) {
    fs_->WriteRaw(path, data);
  }
  std::vector<std::string> ListTree(const std::string& dir) { return fs_->ListTree(dir); }

  std::string P(const std::string& rel) const { return root_path_ + "/" + rel; }

  absl::Status Write(std::string_view rel, std::string data, uint32_t mode = 0644,
                     RootDir::Expect expect = {}) {
    return root_->ReplaceFile(
        rel, [&](FileWriter& out) { return out.Append(data); }, mode, kMtimeNs, expect);
  }

  std::string Read(std::string_view rel) {
    absl::StatusOr<std::unique_ptr<FileReader>> reader = root_->OpenForRead(rel);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string out(1 << 16, '\0');
    absl::StatusOr<size_t> n = (*reader)->Read(out.data(), out.size());
    EXPECT_TRUE(n.ok()) << n.status();
    out.resize(n.ok() ? *n : 0);
    return out;
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

  std::unique_ptr<TestFs> fs_;
  std::string root_path_;
  std::string outside_;
  std::unique_ptr<RootDir> root_;
  bool check_no_temps_ = true;
};

INSTANTIATE_TEST_SUITE_P(Both, RootDirTest, ::testing::Values("disk", "mem"),
                         [](const auto& test) { return test.param; });

RootDir::Expect MustBeAbsent() { return {.must_be_absent = true}; }
RootDir::Expect Unchanged(const FileStat& stat) { return {.unchanged = stat}; }

TEST(RootDirOpenTest, MissingAndNotADirectory) {
  std::string dir = MakeTempDir();
  EXPECT_TRUE(absl::IsNotFound(RootDir::Open(dir + "/missing").status()));
  DiskWriteRaw(dir + "/file", "x");
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

TEST_P(RootDirTest, WriteReadRoundTripKeepsModeAndMtime) {
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

TEST_P(RootDirTest, AppendAllWritesEveryPieceInOrder) {
  // More pieces than one gathered write takes (IOV_MAX, 1024), empty ones among them,
  // pieces that end inside a page, so that pages are shared by pieces, and pieces
  // larger than one write call is given (256 KiB), written in parts.
  std::vector<std::string> pieces;
  std::string expected;
  for (int i = 0; i < 2500; ++i) {
    const size_t size = i % 7 == 0     ? 0
                        : i % 600 == 1 ? (1u << 20) + 3 + static_cast<size_t>(i)
                                       : 1 + (i * 977) % 5000;
    std::string piece(size, '\0');
    for (size_t j = 0; j < size; ++j)
      piece[j] = static_cast<char>('a' + (i + j / 4093) % 26);
    expected += piece;
    pieces.push_back(std::move(piece));
  }
  ASSERT_TRUE(root_
                  ->ReplaceFile("deep/er/file.bin",
                                [&](FileWriter& out) { return out.AppendAll(pieces); },
                                0644, kMtimeNs, {})
                  .ok());
  absl::StatusOr<std::unique_ptr<FileReader>> reader =
      root_->OpenForRead("deep/er/file.bin");
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string read(expected.size() + 1, '\0');
  absl::StatusOr<size_t> n = (*reader)->Read(read.data(), read.size());
  ASSERT_TRUE(n.ok()) << n.status();
  read.resize(*n);
  EXPECT_EQ(read, expected);
}

TEST_P(RootDirTest, ReplaceIsANewFile) {
  ASSERT_TRUE(Write("f", "old contents").ok());
  FileStat before = MustStat("f");
  ASSERT_TRUE(Write("f", "new", 0600, Unchanged(before)).ok());
  FileStat after = MustStat("f");
  EXPECT_EQ(Read("f"), "new");
  EXPECT_NE(after.inode, before.inode);
  EXPECT_EQ(after.mode, 0600u);
  EXPECT_FALSE(SameFile(before, after));
}

TEST_P(RootDirTest, MtimeBeforeEpochAndExecutableMode) {
  ASSERT_TRUE(root_
                  ->ReplaceFile("old", [](FileWriter&) { return absl::OkStatus(); }, 0755,
                                -1'500'000'000'250'000'000, {})
                  .ok());
  FileStat stat = MustStat("old");
  EXPECT_EQ(stat.mtime_ns, -1'500'000'000'250'000'000);
  EXPECT_EQ(stat.mode, 0755u);
  EXPECT_EQ(stat.size, 0u);
}

TEST_P(RootDirTest, SetIdBitsAreNeverSet) {
  ASSERT_TRUE(Write("suid", "x", 06755).ok());
  EXPECT_EQ(MustStat("suid").mode, 0755u);
  EXPECT_TRUE(absl::IsInvalidArgument(Write("bad", "x", 010644)));
  EXPECT_TRUE(Absent("bad"));
}

TEST_P(RootDirTest, ChangedSinceStatIsAborted) {
  ASSERT_TRUE(Write("f", "v1").ok());
  FileStat scanned = MustStat("f");
  WriteRaw(P("f"), "edited by the user");
  absl::Status status = Write("f", "from a peer", 0644, Unchanged(scanned));
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("changed since scan"));
  EXPECT_EQ(Read("f"), "edited by the user");
}

TEST_P(RootDirTest, TwoPhaseBatchWritesAndChecksAtCommit) {
  ASSERT_TRUE(Write("a", "old a").ok());
  ASSERT_TRUE(Write("b", "old b").ok());
  FileStat a = MustStat("a"), b = MustStat("b");
  auto write = [&](std::string_view rel, std::string data,
                   const RootDir::Expect& expect) {
    return root_->WriteTemp(
        rel, [data](FileWriter& out) { return out.Append(data); }, 0600, kMtimeNs,
        expect);
  };
  auto pa = write("a", "new a", Unchanged(a));
  auto pb = write("b", "new b", Unchanged(b));
  auto pc = write("dir/c", "new c", MustBeAbsent());
  auto pd = write("d", "never committed", MustBeAbsent());
  ASSERT_TRUE(pa.ok() && pb.ok() && pc.ok() && pd.ok());
  EXPECT_EQ(Read("a"), "old a");  // nothing is in place before the commit
  ASSERT_TRUE(root_->SyncAll().ok());
  WriteRaw(P("b"), "edited by the user meanwhile");
  absl::StatusOr<std::optional<FileStat>> committed =
      root_->CommitTemp(**pa, Unchanged(a));
  ASSERT_TRUE(committed.ok()) << committed.status();
  // The stat it returns is the file now in place.
  ASSERT_TRUE(committed->has_value());
  EXPECT_TRUE(SameFile(**committed, MustStat("a")));
  EXPECT_EQ((*committed)->size, 5u);
  absl::Status changed = root_->CommitTemp(**pb, Unchanged(b)).status();
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

TEST_P(RootDirTest, DeletedSinceStatIsAborted) {
  ASSERT_TRUE(Write("f", "v1").ok());
  FileStat scanned = MustStat("f");
  fs_->UnlinkRaw(P("f"));
  EXPECT_TRUE(absl::IsAborted(Write("f", "v2", 0644, Unchanged(scanned))));
  EXPECT_TRUE(Absent("f"));
}

TEST_P(RootDirTest, MustBeAbsent) {
  ASSERT_TRUE(Write("f", "mine", 0644, MustBeAbsent()).ok());
  EXPECT_TRUE(absl::IsAborted(Write("f", "theirs", 0644, MustBeAbsent())));
  EXPECT_EQ(Read("f"), "mine");
}

TEST_P(RootDirTest, ChangeDuringWriteIsAborted) {
  // The target appears while the new contents are being written.
  absl::Status status = root_->ReplaceFile(
      "f",
      [&](FileWriter& out) {
        WriteRaw(P("f"), "appeared");
        return out.Append("late");
      },
      0644, kMtimeNs, MustBeAbsent());
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(Read("f"), "appeared");

  FileStat scanned = MustStat("f");
  status = root_->ReplaceFile(
      "f",
      [&](FileWriter& out) {
        WriteRaw(P("f"), "edited meanwhile");
        return out.Append("late");
      },
      0644, kMtimeNs, Unchanged(scanned));
  EXPECT_TRUE(absl::IsAborted(status)) << status;
  EXPECT_EQ(Read("f"), "edited meanwhile");
}

TEST_P(RootDirTest, DirectoryAppearingDuringWriteIsRefused) {
  absl::Status status = root_->ReplaceFile("f",
                                           [&](FileWriter& out) {
                                             fs_->MkdirRaw(P("f"));
                                             return out.Append("late");
                                           },
                                           0644, kMtimeNs, {});
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(ListTree(root_path_), ElementsAre("f"));
}

TEST_P(RootDirTest, ConflictingExpectIsInvalid) {
  RootDir::Expect both{.must_be_absent = true, .unchanged = FileStat{}};
  EXPECT_TRUE(absl::IsInvalidArgument(Write("f", "x", 0644, both)));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->Remove("f", both)));
}

TEST_P(RootDirTest, WriteErrorLeavesTargetAndNoTemp) {
  ASSERT_TRUE(Write("f", "kept").ok());
  absl::Status status = root_->ReplaceFile("f",
                                           [](FileWriter& out) {
                                             EXPECT_TRUE(out.Append("partial").ok());
                                             return absl::DataLossError("chunk missing");
                                           },
                                           0644, kMtimeNs, {});
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_EQ(Read("f"), "kept");
  EXPECT_THAT(ListTree(root_path_), ElementsAre("f"));
}

TEST_P(RootDirTest, DirectoryTargetRefused) {
  ASSERT_TRUE(root_->MakeDir("d", 0755).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(Write("d", "x")));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReplaceSymlink("d", "t", {})));
  EXPECT_EQ(MustStat("d").type, FileStat::kDir);
}

TEST_P(RootDirTest, FileAsParentRefused) {
  ASSERT_TRUE(Write("f", "x").ok());
  absl::Status status = Write("f/g", "y");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("f/d", 0755)));
  EXPECT_TRUE(Absent("f/g"));
  EXPECT_TRUE(root_->Remove("f/g", {}).ok());
}

TEST_P(RootDirTest, InvalidPathsRefusedEverywhere) {
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

TEST_P(RootDirTest, SymlinkInPathToOutsideIsNeverFollowed) {
  WriteRaw(outside_ + "/secret", "do not touch");
  fs_->SymlinkRaw(outside_, P("link"));

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
  EXPECT_EQ(fs_->ReadRaw(outside_ + "/secret"), "do not touch");
  EXPECT_EQ(MustStat("link").type, FileStat::kSymlink);
  EXPECT_EQ(*root_->ReadLink("link"), outside_);
}

TEST_P(RootDirTest, SymlinkLeafIsReplacedNotFollowed) {
  WriteRaw(outside_ + "/target", "outside");
  fs_->SymlinkRaw(outside_ + "/target", P("leaf"));
  EXPECT_EQ(MustStat("leaf").type, FileStat::kSymlink);
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("leaf").status()));
  ASSERT_TRUE(Write("leaf", "inside").ok());
  EXPECT_EQ(MustStat("leaf").type, FileStat::kFile);
  EXPECT_EQ(Read("leaf"), "inside");
  EXPECT_EQ(fs_->ReadRaw(outside_ + "/target"), "outside");
}

TEST_P(RootDirTest, DirectorySwappedForSymlinkAfterOpen) {
  ASSERT_TRUE(root_->MakeDir("a/b", 0755).ok());
  ASSERT_TRUE(Write("a/b/f", "x").ok());
  // Another program swaps a/b for a link out of the folder.
  fs_->RenameRaw(P("a/b"), P("a/old"));
  fs_->SymlinkRaw(outside_, P("a/b"));

  absl::Status status = Write("a/b/f", "escaped");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("a/b"));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("a/b/c", 0755)));
  EXPECT_TRUE(Absent("a/b/f"));
  EXPECT_THAT(ListTree(outside_), IsEmpty());
  EXPECT_EQ(Read("a/old/f"), "x");
}

TEST_P(RootDirTest, RootItselfMayBeReachedThroughALink) {
  std::string link = outside_ + "/root-link";
  fs_->SymlinkRaw(root_path_, link);
  auto via_link = fs_->Open(link);
  ASSERT_TRUE(via_link.ok()) << via_link.status();
  ASSERT_TRUE((*via_link)->MakeDir("d", 0700).ok());
  EXPECT_EQ(MustStat("d").mode, 0700u);
}

TEST_P(RootDirTest, SymlinkRoundTripStoredAsIs) {
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

TEST_P(RootDirTest, SymlinkTargetsBounded) {
  using namespace std::string_literals;
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", "", {})));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", "a\0b"s, {})));
  std::string longest(kSymlinkTargetBytesMax, 't');
  EXPECT_TRUE(absl::IsInvalidArgument(root_->ReplaceSymlink("l", longest + "t", {})));
  EXPECT_TRUE(Absent("l"));
  ASSERT_TRUE(root_->ReplaceSymlink("l", longest, {}).ok());
  EXPECT_EQ(*root_->ReadLink("l"), longest);
}

TEST_P(RootDirTest, ReadLinkOfFileRefused) {
  ASSERT_TRUE(Write("f", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->ReadLink("f").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->ReadLink("missing").status()));
}

TEST_P(RootDirTest, OpenForReadRefusesNonFiles) {
  fs_->MkfifoRaw(P("fifo"));
  ASSERT_TRUE(root_->MakeDir("d", 0755).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("fifo").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->OpenForRead("d").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->OpenForRead("missing").status()));
  EXPECT_TRUE(absl::IsNotFound(root_->OpenForRead("missing/f").status()));
  EXPECT_EQ(MustStat("fifo").type, FileStat::kOther);
}

TEST_P(RootDirTest, OpenForReadIsBlocking) {
  if (!disk()) GTEST_SKIP() << "descriptor flags: disk only";
  ASSERT_TRUE(Write("f", "x").ok());
  auto disk = DiskRootDir::Open(root_path_);
  ASSERT_TRUE(disk.ok());
  absl::StatusOr<int> fd = (*disk)->OpenFd("f");
  ASSERT_TRUE(fd.ok());
  int flags = ::fcntl(*fd, F_GETFL);
  EXPECT_EQ(flags & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  ::close(*fd);
}

TEST_P(RootDirTest, StatOfMissing) {
  EXPECT_TRUE(Absent("nothing"));
  EXPECT_TRUE(Absent("no/such/parent"));
}

TEST_P(RootDirTest, MakeDir) {
  ASSERT_TRUE(root_->MakeDir("x/y/z", 0700).ok());
  EXPECT_EQ(MustStat("x/y/z").mode, 0700u);
  EXPECT_EQ(MustStat("x").type, FileStat::kDir);
  ASSERT_TRUE(root_->MakeDir("x/y/z", 0750).ok());
  EXPECT_EQ(MustStat("x/y/z").mode, 0750u);
  ASSERT_TRUE(Write("f", "x").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDir("f", 0755)));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->MakeDir("g", 040755)));
  // Unsynced (for batches): the same checks and result, durable after SyncAll.
  ASSERT_TRUE(root_->MakeDirUnsynced("u/v", 0700).ok());
  EXPECT_EQ(MustStat("u/v").mode, 0700u);
  EXPECT_EQ(MustStat("u").mode, 0755u);
  EXPECT_TRUE(absl::IsFailedPrecondition(root_->MakeDirUnsynced("f/g", 0755)));
  EXPECT_TRUE(absl::IsInvalidArgument(root_->MakeDirUnsynced("../g", 0755)));
  EXPECT_TRUE(root_->SyncAll().ok());
}

TEST_P(RootDirTest, RemoveFileLinkAndEmptyDir) {
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

TEST_P(RootDirTest, RemoveRefusals) {
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

TEST_P(RootDirTest, RenameCreatesParents) {
  ASSERT_TRUE(Write("f", "x").ok());
  FileStat before = MustStat("f");
  ASSERT_TRUE(root_->Rename("f", "p/q/g", Unchanged(before), MustBeAbsent()).ok());
  EXPECT_TRUE(Absent("f"));
  EXPECT_TRUE(SameFile(MustStat("p/q/g"), before));
  ASSERT_TRUE(root_->Rename("p", "r", {}, MustBeAbsent()).ok());
  EXPECT_EQ(Read("r/q/g"), "x");
}

TEST_P(RootDirTest, RenameOverExistingTarget) {
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

TEST_P(RootDirTest, RenameRefusals) {
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

TEST_P(RootDirTest, WalkOrderTypesAndNoSymlinkDescent) {
  ASSERT_TRUE(Write("b.txt", "x").ok());
  ASSERT_TRUE(Write("a/z", "x").ok());
  ASSERT_TRUE(Write("a/y/deep", "x").ok());
  ASSERT_TRUE(Write("B", "x").ok());
  ASSERT_TRUE(Write("a b", "x").ok());
  ASSERT_TRUE(root_->ReplaceSymlink("link_to_dir", "a", {}).ok());
  WriteRaw(outside_ + "/o", "x");
  ASSERT_TRUE(root_->ReplaceSymlink("link_out", outside_, {}).ok());
  ASSERT_TRUE(root_->MakeDir("empty", 0755).ok());
  fs_->MkfifoRaw(P("fifo"));

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

TEST_P(RootDirTest, WalkSkipsInvalidNames) {
  WriteRaw(P("back\\slash"), "x");
  WriteRaw(P("bad\xff utf8"), "x");
  WriteRaw(P("tab\there"), "x");
  fs_->MkdirRaw(P("dir\x01"));
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

TEST_P(RootDirTest, WalkVisitsTempNames) {
  check_no_temps_ = false;
  WriteRaw(P(".ferry-tmp-0123456789abcdef"), "stale");
  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok());
  EXPECT_THAT(walk.visited,
              ElementsAre(Pair(".ferry-tmp-0123456789abcdef", FileStat::kFile)));
  EXPECT_TRUE(root_->Remove(".ferry-tmp-0123456789abcdef", {}).ok());
}

TEST_P(RootDirTest, WalkStopsAtDepthLimit) {
  std::string deep;
  for (size_t i = 0; i < kPathDepthMax + 2; ++i) deep += (i == 0 ? "d" : "/d");
  fs_->MkdirRaw(P(deep));
  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  ASSERT_EQ(walk.visited.size(), kPathDepthMax);
  EXPECT_EQ(walk.visited.back().first, deep.substr(0, 2 * kPathDepthMax - 1));
  ASSERT_EQ(walk.skipped.size(), 1u);
  EXPECT_EQ(walk.skipped[0], deep.substr(0, 2 * kPathDepthMax + 1));
}

TEST_P(RootDirTest, WalkEntriesBounded) {
  for (int i = 0; i < 10; ++i) WriteRaw(P(StrCat("f", i)), "x");
  EXPECT_TRUE(WalkAll(10).status.ok());
  WalkResult walk = WalkAll(9);
  EXPECT_TRUE(absl::IsResourceExhausted(walk.status)) << walk.status;
  EXPECT_THAT(walk.visited, IsEmpty());
}

// A tree wide and deep enough that the disk walk reads it on several threads (more
// directories than it queues): the visits must still come in walk order, each once.
TEST_P(RootDirTest, WalkOfAWideDeepTreeIsInOrder) {
  struct Node {
    std::map<std::string, Node> children;
    bool dir = false;
  };
  Node model;
  model.dir = true;
  std::mt19937 rng(42);
  std::vector<std::pair<std::string, Node*>> dirs = {{"", &model}};
  for (int i = 0; i < 600; ++i) {
    auto [parent_rel, parent] = dirs[rng() % dirs.size()];
    // Names that sort differently bytewise and component-wise ("a-b" < "a/b").
    std::string name = StrCat(i % 3 == 0 ? "a" : i % 3 == 1 ? "a-" : "B", rng() % 50);
    if (parent->children.contains(name)) continue;
    std::string rel = parent_rel.empty() ? name : StrCat(parent_rel, "/", name);
    Node& node = parent->children[name];
    if (rng() % 2 == 0) {
      node.dir = true;
      fs_->MkdirRaw(P(rel));
      dirs.emplace_back(rel, &node);
    } else {
      WriteRaw(P(rel), "x");
    }
  }
  std::vector<std::pair<std::string, FileStat::Type>> expected;
  std::function<void(const Node&, const std::string&)> list = [&](const Node& n,
                                                                  const std::string& at) {
    for (const auto& [name, child] : n.children) {
      std::string rel = at.empty() ? name : StrCat(at, "/", name);
      expected.emplace_back(rel, child.dir ? FileStat::kDir : FileStat::kFile);
      list(child, rel);
    }
  };
  list(model, "");
  ASSERT_GT(dirs.size(), 100u);

  WalkResult walk = WalkAll();
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  EXPECT_EQ(walk.visited, expected);

  // Past the bound the walk fails, whichever directory passed it.
  WalkResult bounded = WalkAll(expected.size() - 1);
  EXPECT_TRUE(absl::IsResourceExhausted(bounded.status)) << bounded.status;
  EXPECT_LT(bounded.visited.size(), expected.size());
  EXPECT_TRUE(WalkAll(expected.size()).status.ok());
}

TEST_P(RootDirTest, WalkTwiceAndWithoutSkippedCallback) {
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
