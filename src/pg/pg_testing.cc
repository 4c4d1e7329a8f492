#include "src/pg/pg_testing.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>

#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/pg/pg.h"

namespace ferry::pg {
namespace {

constexpr std::string_view kClusterDatabase = "/postgres?";

// Database names are made by the tests: letters, digits and underscores only.
absl::Status CheckName(std::string_view database) {
  bool ok = !database.empty() && database.size() < 64;
  for (char c : database) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!ok) return absl::InvalidArgumentError(StrCat("bad database name ", database));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> TestClusterUrl() {
  const char* file = std::getenv("FERRY_TEST_PG_URL_FILE");
  if (file == nullptr || *file == '\0') {
    return absl::FailedPreconditionError(
        "FERRY_TEST_PG_URL_FILE is not set: run this test through ctest, whose \"pg\" "
        "fixture starts a PostgreSQL cluster (scripts/pg_cluster.sh)");
  }
  std::ifstream in(file);
  std::string url((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!url.empty() && (url.back() == '\n' || url.back() == ' ')) url.pop_back();
  if (url.find(kClusterDatabase) == std::string::npos) {
    return absl::FailedPreconditionError(
        StrCat("no PostgreSQL cluster URI in ", file, ": did pg_cluster_start fail?"));
  }
  return url;
}

std::string UrlOfDatabase(std::string_view cluster_url, std::string_view database) {
  std::string url(cluster_url);
  size_t at = url.find(kClusterDatabase);
  if (at == std::string::npos) return url;
  return url.replace(at, kClusterDatabase.size(), StrCat("/", database, "?"));
}

absl::StatusOr<std::string> CreateDatabase(std::string_view cluster_url,
                                           std::string_view database) {
  FERRY_RETURN_IF_ERROR(CheckName(database));
  FERRY_ASSIGN_OR_RETURN(auto conn, Connection::Open(cluster_url));
  FERRY_ASSIGN_OR_RETURN(
      Result exists,
      conn->Exec("SELECT 1 FROM pg_database WHERE datname = convert_from($1, 'UTF8')",
                 Params().Bytes(database)));
  if (exists.rows() == 0) {
    absl::Status created = conn->Script(StrCat("CREATE DATABASE ", database));
    // Another test process may have made it in between.
    if (!created.ok() && !absl::IsAlreadyExists(created)) return created;
  }
  return UrlOfDatabase(cluster_url, database);
}

absl::StatusOr<std::string> CreateTestDatabase() {
  FERRY_ASSIGN_OR_RETURN(std::string cluster, TestClusterUrl());
  std::random_device random;
  std::string name = StrCat("ferry_test_", random(), "_", random());
  return CreateDatabase(cluster, name);
}

absl::Status DropDatabase(std::string_view cluster_url, std::string_view database) {
  FERRY_RETURN_IF_ERROR(CheckName(database));
  FERRY_ASSIGN_OR_RETURN(auto conn, Connection::Open(cluster_url));
  return conn->Script(StrCat("DROP DATABASE IF EXISTS ", database, " WITH (FORCE)"));
}

}  // namespace ferry::pg
