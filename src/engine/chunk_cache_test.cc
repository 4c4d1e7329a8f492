#include "src/engine/chunk_cache.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "src/core/strings.h"

namespace ferry::engine {
namespace {

namespace fs = std::filesystem;

class ChunkCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/ferry-cache-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path() const { return (dir_ / "cache.db").string(); }

  fs::path dir_;
};

TEST_F(ChunkCacheTest, SignaturesOutliveTheProcessAndTheOldestGoFirst) {
  {
    auto cache = ChunkCache::Open(Path(), 1 << 20, 1 << 20, /*signature_bytes_max=*/1000);
    ASSERT_TRUE(cache.ok()) << cache.status();
    EXPECT_TRUE((*cache)->PutSignatures("empty", "").ok());
    EXPECT_FALSE((*cache)->GetSignatures("empty").has_value());  // "" is not kept
    // Seen before they are written in a batch, and after.
    ASSERT_TRUE((*cache)->PutSignatures("a", std::string(400, 'a')).ok());
    EXPECT_EQ((*cache)->GetSignatures("a"), std::string(400, 'a'));
    ASSERT_TRUE((*cache)->Flush().ok());
    EXPECT_EQ((*cache)->GetSignatures("a"), std::string(400, 'a'));
    ASSERT_TRUE((*cache)->PutSignatures("b", std::string(400, 'b')).ok());
  }  // the destructor writes "b"
  auto cache = ChunkCache::Open(Path(), 1 << 20, 1 << 20, 1000);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->GetSignatures("b"), std::string(400, 'b'));
  EXPECT_EQ((*cache)->GetSignatures("a"), std::string(400, 'a'));  // now newer than b
  // Over the bound: the least recently used (b) goes.
  ASSERT_TRUE((*cache)->PutSignatures("c", std::string(400, 'c')).ok());
  ASSERT_TRUE((*cache)->Flush().ok());
  EXPECT_FALSE((*cache)->GetSignatures("b").has_value());
  EXPECT_TRUE((*cache)->GetSignatures("a").has_value());
  EXPECT_TRUE((*cache)->GetSignatures("c").has_value());
  EXPECT_FALSE((*cache)->GetSignatures("never").has_value());
}

TEST_F(ChunkCacheTest, ManySignaturesAreWrittenInBatches) {
  auto cache = ChunkCache::Open(Path(), 1 << 20, 1 << 20);
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE((*cache)->PutSignatures(StrCat("chunk", i), StrCat("sig", i)).ok());
  }
  cache->reset();
  auto reopened = ChunkCache::Open(Path(), 1 << 20, 1 << 20);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  for (int i = 0; i < 1000; i += 97) {
    EXPECT_EQ((*reopened)->GetSignatures(StrCat("chunk", i)), StrCat("sig", i)) << i;
  }
}

}  // namespace
}  // namespace ferry::engine
