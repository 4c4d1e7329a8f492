// ferryd: the ferry data store and management service.
#include <pthread.h>
#include <signal.h>
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "src/core/file_util.h"
#include "src/server/server.h"

namespace {

// Reads `data`, `listen`, `log_level`, `backend` and `db_connections` from a TOML file;
// flags given on the command line win over the file.
bool ApplyConfig(const std::string& path, const CLI::App& app,
                 ferry::server::ServerOptions* options, std::string* log_level) {
  toml::table config;
  try {
    config = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::fprintf(stderr, "ferryd: cannot read config %s: %s\n", path.c_str(),
                 std::string(e.description()).c_str());
    return false;
  }
  for (const auto& [key, value] : config) {
    if (key == "db_connections") {
      if (!value.is_integer() || value.value_or(int64_t{0}) < 1 ||
          value.value_or(int64_t{0}) > 1000) {
        std::fprintf(stderr, "ferryd: 'db_connections' in %s must be 1 to 1000\n",
                     path.c_str());
        return false;
      }
      continue;
    }
    if (key != "data" && key != "listen" && key != "log_level" && key != "backend") {
      std::fprintf(stderr, "ferryd: unknown key '%s' in %s\n",
                   std::string(key.str()).c_str(), path.c_str());
      return false;
    }
    if (!value.is_string()) {
      std::fprintf(stderr, "ferryd: '%s' in %s must be a string\n",
                   std::string(key.str()).c_str(), path.c_str());
      return false;
    }
  }
  if (app.count("--data") == 0)
    options->data_dir = config["data"].value_or(options->data_dir);
  if (app.count("--listen") == 0)
    options->listen = config["listen"].value_or(options->listen);
  if (app.count("--log-level") == 0)
    *log_level = config["log_level"].value_or(*log_level);
  if (app.count("--backend") == 0)
    options->backend = config["backend"].value_or(options->backend);
  if (app.count("--db-connections") == 0) {
    options->db_connections_max = static_cast<size_t>(config["db_connections"].value_or(
        static_cast<int64_t>(options->db_connections_max)));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  ferry::server::ServerOptions options;
  options.data_dir = ferry::DefaultDataDir("ferryd");
  std::string config_path;
  std::string log_level = "info";

  CLI::App app{
      "ferryd: the ferry data store and management service.\n"
      "Stores each collection's log of sealed (encrypted) transactions and chunks, and\n"
      "manages accounts, devices, collections and leases. It never sees plaintext.\n"
      "Serves gRPC over TLS only: on first start it makes a self-signed certificate in\n"
      "DATA/tls/ and prints its SHA-256 fingerprint (also in DATA/tls/fingerprint);\n"
      "clients pin it on first contact. Stops cleanly on SIGINT or SIGTERM.",
      "ferryd"};
  app.add_option("--data", options.data_dir,
                 "Data directory: database, chunks, certificate (default: "
                 "$XDG_DATA_HOME/ferryd or ~/.local/share/ferryd)");
  app.add_option("--listen", options.listen,
                 "host:port to serve on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--backend", options.backend,
                 "Where accounts, logs and chunks live: sqlite (embedded, in the data "
                 "directory) or a postgresql://USER@HOST/DB URI, which several ferryd "
                 "may share")
      ->capture_default_str();
  app.add_option("--db-connections", options.db_connections_max,
                 "Most connections to PostgreSQL this ferryd opens")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--config", config_path,
                 "TOML file with any of: data = \"DIR\", listen = \"HOST:PORT\", "
                 "log_level = \"LEVEL\", backend = \"sqlite|postgresql://...\", "
                 "db_connections = N; command-line flags win");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!config_path.empty() && !ApplyConfig(config_path, app, &options, &log_level))
    return 2;

  // Debian's Abseil is built with mutex deadlock detection on, which gRPC's locks pay
  // for on every acquisition (a few percent of ferryd's CPU under load).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  auto logger = spdlog::stderr_color_mt("ferryd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = ferry::server::Ferryd::Start(options);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().ToString());
    return 1;
  }
  std::printf("ferryd listening on %s\nfingerprint %s\ndata %s\n",
              (*server)->address().c_str(), (*server)->fingerprint().c_str(),
              options.data_dir.c_str());
  // The URI is not printed: it may hold a password.
  std::printf("backend %s\n", options.backend == "sqlite" ? "sqlite" : "postgresql");
  std::fflush(stdout);
  spdlog::info("serving on {} with data in {}", (*server)->address(), options.data_dir);
  if (options.backend != "sqlite" &&
      std::filesystem::exists(std::filesystem::path(options.data_dir) / "ferry.db")) {
    spdlog::warn("{}/ferry.db (an embedded SQLite store) is not used with --backend {}",
                 options.data_dir, "postgresql");
  }

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: shutting down", signal);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  spdlog::info("stopped");
  return 0;
}
