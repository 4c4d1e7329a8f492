// Files and directories that cannot be written, with real ferry and ferryd processes.
// Device b's folder holds entries marked immutable (FS_IMMUTABLE_FL, `chattr +i`):
// even root cannot replace, delete or add to them. A sync on b applies everything
// else, names each entry it could not write and why, and leaves b's old version in
// place; nothing of a's is lost; once the marks are gone, a plain sync completes.
//
// Setting the mark needs CAP_LINUX_IMMUTABLE and a file system that has it (ext4,
// xfs, btrfs, tmpfs since Linux 6.0); without them the test is skipped and says why.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/core/strings.h"
#include "tests/process.h"
#include "tests/two_devices.h"

namespace ferry {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ReadWholeFile;

// Sets or clears the immutable mark of `path`; "" on success, else why not.
std::string SetImmutable(const fs::path& path, bool on) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return StrCat("open ", path.string(), ": ", std::strerror(errno));
  int flags = 0;
  std::string error;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    error = StrCat("FS_IOC_GETFLAGS: ", std::strerror(errno));
  } else {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
      error = StrCat("FS_IOC_SETFLAGS: ", std::strerror(errno));
    }
  }
  ::close(fd);
  return error;
}

class UnwritableTest : public testing::TwoDevicesTest {
 protected:
  // Whatever happens, the marks go: TempDir could not remove the folder otherwise.
  void TearDown() override {
    for (const fs::path& path : marked_) SetImmutable(path, false);
  }

  static void Write(const fs::path& path, const std::string& data) {
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  }

  // Marks `path`; false (with `why`) when this machine cannot.
  bool Mark(const fs::path& path, std::string* why) {
    *why = SetImmutable(path, true);
    if (!why->empty()) return false;
    marked_.push_back(path);
    return true;
  }

  void UnmarkAll() {
    for (const fs::path& path : marked_) EXPECT_EQ(SetImmutable(path, false), "");
    marked_.clear();
  }

  std::vector<fs::path> marked_;
};

TEST_F(UnwritableTest, LockedEntriesAreReportedTheRestApplies) {
  Write(root_a_ / "locked.txt", "version 1\n");
  Write(root_a_ / "doomed.txt", "delete me\n");
  Write(root_a_ / "sealed/old.txt", "in a sealed directory\n");
  Write(root_a_ / "free.txt", "free 1\n");
  ASSERT_EQ(Ferry("a", {"sync"}).exit_code, 0);
  CommandResult first = Ferry("b", {"sync"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(ReadWholeFile(root_b_ / "locked.txt"), "version 1\n");

  std::string why;
  if (!Mark(root_b_ / "locked.txt", &why)) {
    GTEST_SKIP() << "cannot mark files immutable here: " << why;
  }
  ASSERT_TRUE(Mark(root_b_ / "doomed.txt", &why)) << why;
  ASSERT_TRUE(Mark(root_b_ / "sealed", &why)) << why;

  // a edits the locked file, deletes the doomed one, adds a file to the sealed
  // directory, and changes and adds files nothing prevents.
  Write(root_a_ / "locked.txt", "version 2\n");
  fs::remove(root_a_ / "doomed.txt");
  Write(root_a_ / "sealed/new.txt", "cannot land yet\n");
  Write(root_a_ / "free.txt", "free 2\n");
  Write(root_a_ / "zz-last.txt", "after the locked ones\n");
  ASSERT_EQ(Ferry("a", {"sync"}).exit_code, 0);

  CommandResult blocked = Ferry("b", {"sync"});
  // Everything that could be written was; each entry that could not is named, with
  // the reason.
  EXPECT_EQ(ReadWholeFile(root_b_ / "free.txt"), "free 2\n");
  EXPECT_EQ(ReadWholeFile(root_b_ / "zz-last.txt"), "after the locked ones\n");
  for (const char* rel : {"locked.txt", "doomed.txt", "sealed/new.txt"}) {
    EXPECT_NE(blocked.out.find(rel), std::string::npos) << rel << ":\n" << blocked.out;
  }
  // EPERM for an immutable entry ("Operation not permitted"); EACCES would read
  // "Permission denied".
  EXPECT_NE(blocked.out.find("not permitted"), std::string::npos)
      << blocked.out << blocked.err;
  // b's own versions are untouched, and no temporary file is left behind.
  EXPECT_EQ(ReadWholeFile(root_b_ / "locked.txt"), "version 1\n");
  EXPECT_TRUE(fs::exists(root_b_ / "doomed.txt"));
  EXPECT_FALSE(fs::exists(root_b_ / "sealed/new.txt"));
  for (const auto& entry : fs::recursive_directory_iterator(root_b_)) {
    EXPECT_EQ(entry.path().filename().string().find(".ferry-tmp-"), std::string::npos)
        << entry.path();
  }
  // b pushed nothing of its own: the blocked entries are not local edits.
  EXPECT_NE(blocked.out.find("pushed 0 items"), std::string::npos) << blocked.out;

  // Still blocked: a second sync says so again and changes nothing.
  CommandResult again = Ferry("b", {"sync"});
  EXPECT_NE(again.out.find("locked.txt"), std::string::npos) << again.out;
  EXPECT_EQ(ReadWholeFile(root_b_ / "locked.txt"), "version 1\n");

  // The marks go; a plain sync completes, and a, syncing after it, has nothing new.
  UnmarkAll();
  CommandResult done = Ferry("b", {"sync"});
  ASSERT_EQ(done.exit_code, 0) << done.out << done.err;
  EXPECT_EQ(done.out.find("skipped"), std::string::npos) << done.out;
  EXPECT_EQ(ReadWholeFile(root_b_ / "locked.txt"), "version 2\n");
  EXPECT_FALSE(fs::exists(root_b_ / "doomed.txt"));
  EXPECT_EQ(ReadWholeFile(root_b_ / "sealed/new.txt"), "cannot land yet\n");
  CommandResult a_after = Ferry("a", {"sync"});
  ASSERT_EQ(a_after.exit_code, 0) << a_after.err;
  EXPECT_NE(a_after.out.find("pulled 0 items"), std::string::npos) << a_after.out;
  EXPECT_EQ(ReadWholeFile(root_a_ / "locked.txt"), "version 2\n");
  EXPECT_FALSE(fs::exists(root_a_ / "doomed.txt"));
}

}  // namespace
}  // namespace ferry
