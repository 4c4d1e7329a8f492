// A full disk, with real ferry and ferryd processes: device b's folder, and then
// ferryd's data directory, on a small tmpfs that fills up in the middle of a sync.
// The sync fails with an error that says so; nothing half-written or temporary is left
// in place and nothing already there is damaged; ferryd goes on serving; once there is
// space again, plain syncs complete and every device has everything.
//
// Mounting needs root (or password-less sudo); without it the tests are skipped and
// say why.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "gtest/gtest.h"
#include "src/core/strings.h"
#include "tests/process.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::FerrydProcess;
using testing::ReadWholeFile;
using testing::ReportedSeq;
using testing::RunCommand;
using testing::TempDir;

constexpr int kTmpfsMiB = 8;
constexpr int kTmpfsBiggerMiB = 64;
// What a pushes once the disk is small: more than fits, and incompressible.
constexpr int kBigFiles = 6;
constexpr size_t kBigFileBytes = 2 << 20;
constexpr char kSudo[] = "/usr/bin/sudo";

// A tmpfs mounted for one test: with mount(2) as root, else with `sudo -n mount`. As
// root, the test process first moves to a mount namespace of its own (which the ferry
// and ferryd it starts share), so that the tmpfs goes away with it even when it is
// killed before TearDown.
class Tmpfs {
 public:
  ~Tmpfs() { Unmount(); }

  // Mounts a tmpfs of `mib` MiB at `dir` (made when missing). False, with error()
  // saying why, when this process may not mount.
  bool Mount(const std::string& dir, int mib) {
    fs::create_directories(dir);
    std::string options = StrCat("size=", mib, "m");
    if (::geteuid() == 0) {
      // Without a namespace of its own (not permitted here), the mount is only undone
      // by TearDown.
      if (::unshare(CLONE_NEWNS) == 0) {
        ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
      }
      if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
        error_ = StrCat("mount(2): ", std::strerror(errno));
        return false;
      }
    } else if (!Sudo({"mount", "-t", "tmpfs", "-o", options, "tmpfs", dir})) {
      return false;
    }
    dir_ = dir;
    return true;
  }

  // Gives the mounted tmpfs `mib` MiB, keeping what is on it.
  bool Resize(int mib) {
    std::string options = StrCat("size=", mib, "m");
    if (::geteuid() == 0) {
      if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) != 0) {
        error_ = StrCat("remount: ", std::strerror(errno));
        return false;
      }
      return true;
    }
    return Sudo({"mount", "-o", StrCat("remount,", options), dir_});
  }

  // Unmounts (lazily when something still uses it); nothing when not mounted.
  void Unmount() {
    if (dir_.empty()) return;
    if (::geteuid() == 0) {
      if (::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
    } else if (!Sudo({"umount", dir_})) {
      Sudo({"umount", "-l", dir_});
    }
    dir_.clear();
  }

  const std::string& error() const { return error_; }

 private:
  bool Sudo(std::vector<std::string> args) {
    if (::access(kSudo, X_OK) != 0) {
      error_ = "not root, and no sudo";
      return false;
    }
    args.insert(args.begin(), {kSudo, "-n"});
    CommandResult r = RunCommand(args, "", 30000);
    if (r.exit_code != 0) error_ = StrCat("sudo -n ", args[2], ": ", r.err);
    return r.exit_code == 0;
  }

  std::string dir_;
  std::string error_;
};

// Every regular file and directory under `root`: relative path -> contents ("" and a
// trailing '/' in the path for a directory).
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> tree;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(entry.path(), root).string();
    if (entry.is_directory()) {
      tree[StrCat(rel, "/")] = "";
    } else {
      tree[rel] = ReadWholeFile(entry.path());
    }
  }
  return tree;
}

// Writes `path` until its file system has no space left (bounded: at most `bytes_max`).
// False when writing failed for another reason.
bool FillUp(const std::string& path, size_t bytes_max = 256u << 20) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const std::string block(64 << 10, 'f');
  size_t written = 0, step = block.size();
  bool full = false;
  // Large writes first, then single bytes for what is left in the last page.
  while (!full && written < bytes_max) {
    ssize_t n = ::write(fd, block.data(), step);
    if (n > 0) {
      written += static_cast<size_t>(n);
    } else if (n < 0 && errno == ENOSPC && step > 1) {
      step = 1;
    } else {
      full = n < 0 && errno == ENOSPC;
      if (!full) break;
    }
  }
  ::close(fd);
  return full;
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override { std::ofstream(dir_ / "passphrase") << "full disk\n"; }

  // ferryd first: it keeps files open on the tmpfs.
  void TearDown() override {
    server_.reset();
    tmpfs_.Unmount();
  }

  // ferryd on `data_dir`, devices a and b with collection Docs in `root_a` and
  // `root_b`.
  void StartAndAdd(const std::string& data_dir, const std::string& root_a,
                   const std::string& root_b) {
    server_ = std::make_unique<FerrydProcess>(data_dir);
    ASSERT_TRUE(server_->ok()) << server_->error();
    ASSERT_EQ(Login("a", true), 0);
    ASSERT_EQ(Login("b", false), 0);
    ASSERT_EQ(Ferry("a", {"add", "Docs", "--path", root_a}).exit_code, 0);
    ASSERT_EQ(Ferry("b", {"add", "Docs", "--path", root_b}).exit_code, 0);
  }

  int Login(const std::string& home, bool create) {
    CommandResult r =
        testing::RunFerryLogin(dir_ / StrCat("home-", home), server_->address(), "full",
                               dir_ / "passphrase", create, 120000);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code;
  }

  // `r` failed for lack of space on ferryd's disk, and says so: "ferryd at ADDR: ...:
  // No space left on device" (a chunk) or "... database or disk is full".
  void ExpectServerOutOfSpace(const CommandResult& r) {
    EXPECT_NE(r.err.find(StrCat("ferryd at ", server_->address())), std::string::npos)
        << r.err;
    EXPECT_TRUE(r.err.find("No space left on device") != std::string::npos ||
                r.err.find("disk is full") != std::string::npos)
        << r.err;
  }

  CommandResult Ferry(const std::string& home, const std::vector<std::string>& args) {
    return testing::RunFerry(dir_ / StrCat("home-", home), args, 120000);
  }

  void Write(const fs::path& path, const std::string& data) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  }

  std::string Random(size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(random_());
    return out;
  }

  // A folder of a few hundred KiB: files that will stay as they are, files a will
  // change, and a directory.
  void WriteFirstTree(const fs::path& root) {
    for (int i = 0; i < 4; ++i) {
      Write(root / StrCat("keep/k", i), Random(100 << 10));
      Write(root / StrCat("edit/e", i), Random(60 << 10));
    }
    Write(root / "notes.txt", "first notes\n");
  }

  // More than the tmpfs holds: big incompressible files, small ones, and new versions
  // of the files in edit/.
  void WriteTooMuch(const fs::path& root) {
    for (int i = 0; i < kBigFiles; ++i) {
      Write(root / StrCat("big/b", i), Random(kBigFileBytes));
    }
    for (int i = 0; i < 20; ++i) {
      Write(root / StrCat("small/s", i), StrCat("small file ", i));
    }
    for (int i = 0; i < 4; ++i) {
      Write(root / StrCat("edit/e", i), Random(70 << 10));
    }
    Write(root / "notes.txt", "second notes\n");
  }

  TempDir dir_;
  Tmpfs tmpfs_;
  std::unique_ptr<FerrydProcess> server_;
  std::mt19937_64 random_{20261127};
};

// No temporary file anywhere under `root`, and every file is complete: the version
// it had in `before`, or the one in `after`.
void ExpectOnlyWholeVersions(const fs::path& root,
                             const std::map<std::string, std::string>& before,
                             const std::map<std::string, std::string>& after) {
  for (const auto& [rel, bytes] : Tree(root)) {
    EXPECT_EQ(rel.find(".ferry-tmp-"), std::string::npos) << "temporary file " << rel;
    auto was = before.find(rel);
    auto now = after.find(rel);
    bool known = (was != before.end() && was->second == bytes) ||
                 (now != after.end() && now->second == bytes);
    EXPECT_TRUE(known) << rel << " (" << bytes.size()
                       << " bytes) is neither b's old version nor a's new one";
  }
}

TEST_F(FullDiskTest, FullFolderFailsCleanlyAndSyncsOnceThereIsSpace) {
  fs::path mount = dir_ / "mnt", root_a = dir_ / "root-a", root_b = mount / "docs";
  if (!tmpfs_.Mount(mount, kTmpfsMiB)) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << tmpfs_.error();
  }
  ASSERT_NO_FATAL_FAILURE(StartAndAdd(dir_ / "server", root_a, root_b));
  WriteFirstTree(root_a);
  ASSERT_EQ(Ferry("a", {"sync"}).exit_code, 0);
  CommandResult first = Ferry("b", {"sync"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  const std::map<std::string, std::string> had = Tree(root_b);
  ASSERT_EQ(had, Tree(root_a));
  // A filler beside the folder, on the same tmpfs: freed later.
  Write(mount / "filler", Random(2 << 20));

  WriteTooMuch(root_a);
  CommandResult pushed = Ferry("a", {"sync"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err;
  const std::map<std::string, std::string> wanted = Tree(root_a);
  for (int attempt = 0; attempt < 2; ++attempt) {
    CommandResult full = Ferry("b", {"sync"});
    EXPECT_EQ(full.exit_code, 1) << attempt << ": " << full.out << full.err;
    EXPECT_NE(full.err.find("No space left on device"), std::string::npos)
        << attempt << ": " << full.err;
    // b's own disk is full, not ferryd's: the message does not blame the server.
    EXPECT_EQ(full.err.find("ferryd at"), std::string::npos) << full.err;
    ExpectOnlyWholeVersions(root_b, had, wanted);
    for (const auto& [rel, bytes] : had) {
      if (rel.starts_with("keep/") && !rel.ends_with("/")) {
        EXPECT_EQ(ReadWholeFile(root_b / rel), bytes) << rel;
      }
    }
    // Freeing the filler is not enough for 12 MiB: the second attempt fails the same.
    if (attempt == 0) fs::remove(mount / "filler");
  }
  if (::testing::Test::HasFailure()) return;

  ASSERT_TRUE(tmpfs_.Resize(kTmpfsBiggerMiB)) << tmpfs_.error();
  CommandResult done = Ferry("b", {"sync"});
  ASSERT_EQ(done.exit_code, 0) << done.out << done.err;
  // b only pulled: the failures left nothing it takes for a change of its own.
  EXPECT_NE(done.out.find("pushed 0 items"), std::string::npos) << done.out;
  EXPECT_NE(done.out.find(", 0 conflicts"), std::string::npos) << done.out;
  EXPECT_EQ(Tree(root_b), wanted);
  CommandResult after = Ferry("a", {"sync"});
  ASSERT_EQ(after.exit_code, 0) << after.out << after.err;
  EXPECT_NE(after.out.find("pulled 0 items"), std::string::npos) << after.out;
  EXPECT_EQ(Tree(root_a), wanted);
}

TEST_F(FullDiskTest, FullServerRefusesThePushKeepsServingAndLosesNothing) {
  fs::path mount = dir_ / "mnt", root_a = dir_ / "root-a", root_b = dir_ / "root-b";
  if (!tmpfs_.Mount(mount, kTmpfsMiB)) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << tmpfs_.error();
  }
  ASSERT_NO_FATAL_FAILURE(StartAndAdd(mount / "data", root_a, root_b));
  WriteFirstTree(root_a);
  CommandResult first = Ferry("a", {"sync"});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  uint64_t acknowledged = ReportedSeq(first.out);
  ASSERT_GT(acknowledged, 0u);
  ASSERT_EQ(Ferry("b", {"sync"}).exit_code, 0);
  const std::map<std::string, std::string> acked_tree = Tree(root_a);

  WriteTooMuch(root_a);
  CommandResult full = Ferry("a", {"sync"});
  EXPECT_EQ(full.exit_code, 1) << full.out << full.err;
  ExpectServerOutOfSpace(full);

  // ferryd gave back what the failed write had taken; now the disk is made full to the
  // last byte. ferryd goes on serving: what only reads works (a sync with nothing to
  // push among it), and b's push is refused as clearly.
  ASSERT_TRUE(FillUp(mount / "filler"));
  CommandResult pull_only = Ferry("b", {"sync"});
  EXPECT_EQ(pull_only.exit_code, 0) << pull_only.out << pull_only.err;
  CommandResult devices = Ferry("b", {"devices"});
  EXPECT_EQ(devices.exit_code, 0) << devices.err;
  CommandResult log = Ferry("b", {"log", "Docs"});
  EXPECT_EQ(log.exit_code, 0) << log.err;
  const std::string from_b = Random(64 << 10);  // more than the slack of a page
  Write(root_b / "from-b.bin", from_b);
  CommandResult refused = Ferry("b", {"sync"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  ExpectServerOutOfSpace(refused);
  // b's folder is as it was: what was acknowledged, and b's new file.
  std::map<std::string, std::string> b_tree = acked_tree;
  b_tree["from-b.bin"] = from_b;
  EXPECT_EQ(Tree(root_b), b_tree);
  // Some space again, not enough for a's push: b's small sync now works, with the
  // same ferryd.
  fs::remove(mount / "filler");
  CommandResult small = Ferry("b", {"sync"});
  EXPECT_EQ(small.exit_code, 0) << small.out << small.err;
  EXPECT_NE(small.out.find("pushed 1 items"), std::string::npos) << small.out;
  EXPECT_GT(ReportedSeq(small.out), acknowledged) << small.out;

  ASSERT_TRUE(tmpfs_.Resize(kTmpfsBiggerMiB)) << tmpfs_.error();
  CommandResult pushed = Ferry("a", {"sync"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err;
  EXPECT_GT(ReportedSeq(pushed.out), acknowledged);
  CommandResult pulled = Ferry("b", {"sync"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.out << pulled.err;
  EXPECT_EQ(Tree(root_b), Tree(root_a));
  EXPECT_EQ(ReadWholeFile(root_a / "from-b.bin"), from_b);
  EXPECT_EQ(ReadWholeFile(root_a / "notes.txt"), "second notes\n");
  for (int i = 0; i < kBigFiles; ++i) {
    EXPECT_EQ(fs::file_size(root_b / StrCat("big/b", i)), kBigFileBytes);
  }
  // And all of it is durable in ferryd: a restart on the same data loses none of it.
  std::string address = server_->address();
  ASSERT_EQ(server_->Stop(), 0);
  server_ = std::make_unique<FerrydProcess>(mount / "data", std::vector<std::string>{},
                                            address);
  ASSERT_TRUE(server_->ok()) << server_->error();
  fs::path root_c = dir_ / "root-c";
  ASSERT_EQ(Login("c", false), 0);
  ASSERT_EQ(Ferry("c", {"add", "Docs", "--path", root_c}).exit_code, 0);
  CommandResult fresh = Ferry("c", {"sync"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.out << fresh.err;
  EXPECT_EQ(Tree(root_c), Tree(root_a));
}

}  // namespace
}  // namespace ferry
