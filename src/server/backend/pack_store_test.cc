#include "src/server/backend/pack_store.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace ferry::server {
namespace {

class PackStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ferry-pack-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(PackStoreTest, AppendedRecordsReadBackAfterReopening) {
  std::vector<PackLocation> at;
  {
    auto store = PackStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    auto first = (*store)->Append({{"id-a", "alpha"}, {"id-b", ""}, {"id-c", "gamma"}});
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = (*store)->Append({{"id-d", std::string(100000, 'd')}});
    ASSERT_TRUE(second.ok()) << second.status();
    at = *first;
    at.push_back((*second)[0]);
    EXPECT_EQ(*(*store)->Read(at[0], "id-a"), "alpha");
  }
  auto store = PackStore::Open(dir_);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*(*store)->Read(at[0], "id-a"), "alpha");
  EXPECT_EQ(*(*store)->Read(at[1], "id-b"), "");
  EXPECT_EQ(*(*store)->Read(at[2], "id-c"), "gamma");
  EXPECT_EQ(*(*store)->Read(at[3], "id-d"), std::string(100000, 'd'));
  // Appends after reopening go after what is there.
  auto more = (*store)->Append({{"id-e", "epsilon"}});
  ASSERT_TRUE(more.ok());
  EXPECT_GT((*more)[0].offset, at[3].offset);
  EXPECT_EQ(*(*store)->Read(at[3], "id-d"), std::string(100000, 'd'));
  EXPECT_EQ(*(*store)->Read((*more)[0], "id-e"), "epsilon");
}

TEST_F(PackStoreTest, ALocationThatDisagreesIsDataLoss) {
  auto store = PackStore::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto at = (*store)->Append({{"id-a", "alpha"}, {"id-b", "beta"}});
  ASSERT_TRUE(at.ok());
  EXPECT_EQ((*store)->Read((*at)[0], "id-b").status().code(),
            absl::StatusCode::kDataLoss);
  PackLocation shifted = (*at)[1];
  shifted.offset += 1;
  EXPECT_EQ((*store)->Read(shifted, "id-b").status().code(), absl::StatusCode::kDataLoss);
  PackLocation past_end = (*at)[1];
  past_end.size = 1000;
  EXPECT_EQ((*store)->Read(past_end, "id-b").status().code(),
            absl::StatusCode::kDataLoss);
  PackLocation other_pack = (*at)[1];
  other_pack.pack = 99;
  EXPECT_EQ((*store)->Read(other_pack, "id-b").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(PackStoreTest, GarbageLeftByACrashedAppendIsSkipped) {
  PackLocation a;
  {
    auto store = PackStore::Open(dir_);
    ASSERT_TRUE(store.ok());
    auto at = (*store)->Append({{"id-a", "alpha"}});
    ASSERT_TRUE(at.ok());
    a = (*at)[0];
  }
  // Half a record, as a crash in the middle of an append leaves it.
  std::ofstream(dir_ + "/pack-00000001", std::ios::app | std::ios::binary)
      << "\x04\x00\x00";
  auto store = PackStore::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto b = (*store)->Append({{"id-b", "beta"}});
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*(*store)->Read(a, "id-a"), "alpha");
  EXPECT_EQ(*(*store)->Read((*b)[0], "id-b"), "beta");
}

// A write that fails part way (a full disk; here a file size limit, which fails the
// same way without a file system of its own) leaves no bytes behind: the space is
// given back, and the next append goes where the failed one started.
TEST_F(PackStoreTest, AFailedAppendGivesItsSpaceBack) {
  auto store = PackStore::Open(dir_);
  ASSERT_TRUE(store.ok());
  auto a = (*store)->Append({{"id-a", "alpha"}});
  ASSERT_TRUE(a.ok());
  std::string pack = dir_ + "/pack-00000001";
  uintmax_t size_before = std::filesystem::file_size(pack);
  // Writes past the limit fail with EFBIG (SIGXFSZ ignored) after a partial write.
  constexpr rlim_t kLimitBytes = 64 << 10;
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit limit = {kLimitBytes, old_limit.rlim_max};
  sighandler_t old_handler = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  auto failed = (*store)->Append({{"id-big", std::string(200 << 10, 'b')}});
  uintmax_t size_after_failure = std::filesystem::file_size(pack);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(size_after_failure, size_before);
  auto b = (*store)->Append({{"id-b", "beta"}});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)[0].offset, size_before + 8 + 4);  // header and id, then the data
  EXPECT_EQ(*(*store)->Read((*a)[0], "id-a"), "alpha");
  EXPECT_EQ(*(*store)->Read((*b)[0], "id-b"), "beta");
  EXPECT_EQ(std::filesystem::file_size(pack), size_before + 8 + 4 + 4);
}

}  // namespace
}  // namespace ferry::server
