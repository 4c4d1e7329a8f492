#include "src/engine/shadow_store.h"

#include <stdlib.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace ferry::engine {
namespace {

namespace fs = std::filesystem;

TEST(ShadowStoreTest, AConflictLoggedTwiceIsKeptOnceUntilResolved) {
  char pattern[] = "/tmp/ferry-shadow-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  fs::path dir = pattern;
  {
    auto shadow = ShadowStore::Open((dir / "shadow.db").string());
    ASSERT_TRUE(shadow.ok()) << shadow.status();
    ConflictRecord record;
    record.time_ms = 1;
    record.item_id = "ada";
    record.kind = "field edit/edit";
    record.field = "VCARD/NOTE";
    record.kept_value = "NOTE:laptop";
    record.other_value = "NOTE:phone";
    ShadowUpdate update;
    update.conflicts = {record};
    ASSERT_TRUE((*shadow)->Commit(update).ok());
    update.conflicts[0].time_ms = 2;  // the same merge, run again after a crash
    ASSERT_TRUE((*shadow)->Commit(update).ok());
    auto logged = (*shadow)->Conflicts();
    ASSERT_TRUE(logged.ok()) << logged.status();
    ASSERT_EQ(logged->size(), 1u);
    // Another value is another conflict.
    update.conflicts[0].other_value = "NOTE:tablet";
    ASSERT_TRUE((*shadow)->Commit(update).ok());
    EXPECT_EQ((*shadow)->Conflicts()->size(), 2u);
    // Once resolved, the same conflict happening again is logged again.
    ShadowUpdate resolve;
    resolve.resolved_conflicts = {(*logged)[0].id};
    ASSERT_TRUE((*shadow)->Commit(resolve).ok());
    update.conflicts[0].other_value = "NOTE:phone";
    ASSERT_TRUE((*shadow)->Commit(update).ok());
    EXPECT_EQ((*shadow)->Conflicts()->size(), 3u);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ferry::engine
