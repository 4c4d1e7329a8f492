#include "src/server/backend/pack_store.h"

#include <stdlib.h>

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

}  // namespace
}  // namespace ferry::server
