#include "src/connectors/files/files_connector.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "src/engine/items.h"

namespace ferry::files {
namespace {

namespace fs = std::filesystem;

class FilesConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    char pattern[] = "/tmp/ferry-connector-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    std::ofstream(root_ / "ok.txt") << "fine";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<FilesConnector> Make(std::optional<bool> case_insensitive) {
    FilesOptions options;
    options.root = root_.string();
    options.case_insensitive = case_insensitive;
    return std::make_unique<FilesConnector>(options, &hasher_, ChunkerSeed(hasher_));
  }

  static v1::Item Dir(const std::string& id) {
    v1::Item item;
    item.set_id(id);
    engine::SetBytesField(&item, "type", "dir");
    engine::SetBytesField(&item, "mode", "493");
    return item;
  }

  fs::path root_;
  seal::CollectionKey key_{seal::SecretKey::Random(), 1};
  seal::ContentHasher hasher_{key_};
};

TEST_F(FilesConnectorTest, CaseCollisionsRefusedOnlyWhereCaseIsIgnored) {
  v1::Item upper = Dir("OK.TXT");
  auto insensitive = Make(true);
  ASSERT_TRUE(insensitive->Scan({}, {}).ok());
  auto refused = insensitive->Apply("OK.TXT", "", &upper, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_FALSE(fs::exists(root_ / "OK.TXT"));

  auto sensitive = Make(false);
  ASSERT_TRUE(sensitive->Scan({}, {}).ok());
  EXPECT_TRUE(sensitive->Apply("OK.TXT", "", &upper, nullptr).ok());
  EXPECT_TRUE(fs::is_directory(root_ / "OK.TXT"));
}

TEST_F(FilesConnectorTest, ProbeFindsThisFileSystemCaseSensitiveAndLeavesNothing) {
  auto probed = Make(std::nullopt);
  auto scan = probed->Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_EQ(scan->items.size(), 1u);  // ok.txt; the probe file is gone
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root_)) ++entries;
  EXPECT_EQ(entries, 1);
  // The test folder is on a case-sensitive file system (ext4, tmpfs, overlayfs).
  v1::Item upper = Dir("OK.TXT");
  EXPECT_TRUE(probed->Apply("OK.TXT", "", &upper, nullptr).ok());
}

TEST_F(FilesConnectorTest, StaleTemporaryFilesAreRemovedFreshOnesKept) {
  fs::create_directories(root_ / "dir");
  std::ofstream(root_ / ".ferry-tmp-leftover") << "half a file";
  std::ofstream(root_ / "dir/.ferry-tmp-other") << "half another";
  auto keeping = Make(false);  // default age: an hour
  ASSERT_TRUE(keeping->Scan({}, {}).ok());
  EXPECT_TRUE(fs::exists(root_ / ".ferry-tmp-leftover"));
  FilesOptions options;
  options.root = root_.string();
  options.case_insensitive = false;
  options.stale_temp_age_ms = -1000;  // everything counts as stale
  FilesConnector cleaning(options, &hasher_, ChunkerSeed(hasher_));
  auto scan = cleaning.Scan({}, {});
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_FALSE(fs::exists(root_ / ".ferry-tmp-leftover"));
  EXPECT_FALSE(fs::exists(root_ / "dir/.ferry-tmp-other"));
  EXPECT_TRUE(fs::exists(root_ / "ok.txt"));
  EXPECT_EQ(scan->items.count(".ferry-tmp-leftover"), 0u);
}

TEST_F(FilesConnectorTest, ALinkOrFileReplacesAnEmptyDirectoryOnly) {
  auto connector = Make(false);
  v1::Item dir = Dir("d");
  auto made = connector->Apply("d", "", &dir, nullptr);
  ASSERT_TRUE(made.ok()) << made.status();
  v1::Item link;
  link.set_id("d");
  engine::SetBytesField(&link, "type", "symlink");
  engine::SetBytesField(&link, "mode", "0");
  engine::SetBytesField(&link, "target", "/elsewhere");
  auto linked = connector->Apply("d", *made, &link, nullptr);
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_TRUE(fs::is_symlink(root_ / "d"));
  EXPECT_EQ(fs::read_symlink(root_ / "d"), "/elsewhere");

  // A directory that is not empty stays, and so does what is in it.
  v1::Item full = Dir("full");
  auto full_made = connector->Apply("full", "", &full, nullptr);
  ASSERT_TRUE(full_made.ok()) << full_made.status();
  std::ofstream(root_ / "full/kept.txt") << "kept";
  auto stamp = connector->Scan({}, {});
  ASSERT_TRUE(stamp.ok()) << stamp.status();
  link.set_id("full");
  auto refused = connector->Apply("full", stamp->items.at("full").stamp, &link, nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(fs::is_directory(root_ / "full"));
  EXPECT_TRUE(fs::exists(root_ / "full/kept.txt"));
}

}  // namespace
}  // namespace ferry::files
