// ferryd as a library: opens the backend, makes or loads the TLS certificate, and
// serves the Manage and Store services. Used by ferryd's main and by tests.
#ifndef FERRY_SERVER_SERVER_H_
#define FERRY_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ferry {
class Clock;
}

namespace ferry::server {

struct ServerOptions {
  std::string data_dir;                   // created when missing (mode 0700)
  std::string listen = "127.0.0.1:7443";  // host:port; port 0 picks a free one
  // The server's time (leases, records); nullptr: the system clock. The simulation
  // passes its own to let leases expire at will.
  Clock* clock = nullptr;
  // "sqlite": the embedded store in data_dir. A postgresql:// (or postgres://) URI: a
  // PostgreSQL database that several ferryd may share; data_dir then holds only the
  // TLS certificate, the server secret and the lock.
  std::string backend = "sqlite";
  size_t db_connections_max = 12;  // the PostgreSQL connection pool's bound
};

class Ferryd {
 public:
  // Opens everything and starts serving. FAILED_PRECONDITION when another ferryd holds
  // the data directory; INVALID_ARGUMENT for an unknown backend.
  static absl::StatusOr<std::unique_ptr<Ferryd>> Start(const ServerOptions& options);
  virtual ~Ferryd() = default;

  // The address actually bound, with the real port.
  virtual std::string address() const = 0;
  // "SHA256:<hex>" of the server certificate.
  virtual std::string fingerprint() const = 0;
  // Stops accepting calls, ends watch streams and waits (bounded) for calls in flight.
  // Safe to call from any thread, more than once.
  virtual void Shutdown() = 0;
  // Blocks until Shutdown() has completed.
  virtual void Wait() = 0;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_SERVER_H_
