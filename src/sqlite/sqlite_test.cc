#include "src/sqlite/sqlite.h"

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace ferry::sqlite {
namespace {

// A database that cannot grow (a full disk; here a page limit, which SQLite reports
// the same way) is RESOURCE_EXHAUSTED, as ENOSPC is elsewhere: a caller may retry once
// there is space, and the rows written before are intact.
TEST(SqliteTest, AFullDatabaseIsResourceExhausted) {
  char pattern[] = "/tmp/ferry-sqlite-test-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  {
    auto db = Database::Open(dir + "/test.db");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("CREATE TABLE t(v BLOB)").ok());
    ASSERT_TRUE((*db)->Exec("PRAGMA max_page_count = 16").ok());
    absl::Status status;
    int rows = 0;
    for (; rows < 1000 && status.ok(); ++rows) {
      auto insert = (*db)->Prepare("INSERT INTO t(v) VALUES(?1)");
      ASSERT_TRUE(insert.ok());
      status = insert->BindBlob(1, std::string(1000, 'x')).Run();
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_NE(status.message().find("full"), std::string::npos) << status;
    auto count = (*db)->Prepare("SELECT COUNT(*) FROM t");
    ASSERT_TRUE(count.ok());
    ASSERT_TRUE(*count->Step());
    EXPECT_EQ(count->ColumnInt(0), rows - 1);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ferry::sqlite
