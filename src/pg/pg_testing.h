// For tests that need PostgreSQL: ctest's "pg" fixture starts a throw-away cluster
// (scripts/pg_cluster.sh) and passes the file holding its URI in the environment
// variable FERRY_TEST_PG_URL_FILE. Each test makes its own database, so tests run in
// parallel. A missing cluster is an error, never a skip.
#ifndef FERRY_PG_PG_TESTING_H_
#define FERRY_PG_PG_TESTING_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ferry::pg {

// The URI of the fixture cluster's "postgres" database.
absl::StatusOr<std::string> TestClusterUrl();
// `cluster_url` with its database replaced by `database`.
std::string UrlOfDatabase(std::string_view cluster_url, std::string_view database);
// Creates `database` in the cluster of `cluster_url` unless it exists; returns its URI.
absl::StatusOr<std::string> CreateDatabase(std::string_view cluster_url,
                                           std::string_view database);
// A database with a fresh random name in the fixture cluster; returns its URI.
absl::StatusOr<std::string> CreateTestDatabase();
// Drops `database`, closing its connections first.
absl::Status DropDatabase(std::string_view cluster_url, std::string_view database);

}  // namespace ferry::pg

#endif  // FERRY_PG_PG_TESTING_H_
