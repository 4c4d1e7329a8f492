// The gRPC client of ferryd: both services behind one small interface, over TLS with
// the server certificate pinned.
//
// A Client is safe for concurrent use by many threads (gRPC channels and stubs are).
#ifndef FERRY_NET_CLIENT_H_
#define FERRY_NET_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/ferry/v1/manage.pb.h"
#include "proto/ferry/v1/store.pb.h"

namespace grpc {
class Channel;
}

namespace ferry::net {

// A channel to `server` (host:port) that trusts only the certificate `cert_pem` (a
// pin), as every Client's; each channel made has a connection of its own.
std::shared_ptr<grpc::Channel> OpenPinnedChannel(const std::string& server,
                                                 const std::string& cert_pem);

struct ConnectOptions {
  std::string server;           // host:port
  std::string pinned_cert_pem;  // the certificate pinned earlier; empty on first contact
  std::string expected_fingerprint;  // optional "SHA256:..." the server must present
  std::string token;                 // bearer token of this device; empty before login
  int timeout_ms = 15000;            // deadline of each call
};

// A server-streaming Watch. Next() blocks until a head moves or the stream ends.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // False when the stream ended; Finish() then tells why.
  virtual bool Next(v1::HeadChanged* change) = 0;
  virtual void Cancel() = 0;
  virtual absl::Status Finish() = 0;
};

class Client {
 public:
  // Checks the certificate the server presents against the pinned one (or, on first
  // contact, against `expected_fingerprint` when given), then opens a channel that
  // trusts only that certificate. FAILED_PRECONDITION with both fingerprints when the
  // server's certificate changed; UNAVAILABLE when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ConnectOptions& options);
  virtual ~Client() = default;

  // The certificate this client trusts (to be saved as the pin) and its fingerprint.
  virtual const std::string& server_cert_pem() const = 0;
  virtual const std::string& fingerprint() const = 0;
  virtual void set_token(std::string token) = 0;

  // Manage.
  virtual absl::StatusOr<v1::KdfParams> GetLoginParams(const std::string& user) = 0;
  virtual absl::StatusOr<v1::LoginResponse> CreateAccount(
      const v1::CreateAccountRequest& request) = 0;
  virtual absl::StatusOr<v1::LoginResponse> Login(const v1::LoginRequest& request) = 0;
  virtual absl::StatusOr<std::vector<v1::Device>> ListDevices() = 0;
  virtual absl::Status RenameDevice(const std::string& device_id,
                                    const std::string& name) = 0;
  virtual absl::Status RevokeDevice(const std::string& device_id) = 0;
  virtual absl::StatusOr<v1::Collection> CreateCollection(const v1::Collection& c) = 0;
  virtual absl::StatusOr<std::vector<v1::Collection>> ListCollections() = 0;
  virtual absl::StatusOr<v1::Lease> AcquireLease(const std::string& collection_id,
                                                 uint32_t ttl_ms) = 0;
  virtual absl::StatusOr<v1::Lease> RenewLease(const std::string& collection_id,
                                               uint64_t fencing_token,
                                               uint32_t ttl_ms) = 0;
  virtual absl::Status ReleaseLease(const std::string& collection_id,
                                    uint64_t fencing_token) = 0;

  // Store.
  virtual absl::StatusOr<v1::AppendResponse> Append(const std::string& collection_id,
                                                    const std::string& envelope,
                                                    uint64_t fencing_token) = 0;
  virtual absl::StatusOr<v1::PullResponse> Pull(const std::string& collection_id,
                                                uint64_t after_seq, uint32_t limit) = 0;
  virtual absl::StatusOr<uint64_t> Head(const std::string& collection_id) = 0;
  virtual absl::StatusOr<std::vector<bool>> HasChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) = 0;
  // Uploads (id, sealed data) pairs in one stream.
  virtual absl::StatusOr<v1::PutChunksResponse> PutChunks(
      const std::string& collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) = 0;
  // Returns (id, sealed data) pairs in the order asked.
  virtual absl::StatusOr<std::vector<std::pair<std::string, std::string>>> GetChunks(
      const std::string& collection_id, const std::vector<std::string>& ids) = 0;
  // Has no deadline; ends with Cancel() or when the server stops.
  virtual std::unique_ptr<WatchStream> Watch(
      const std::vector<std::string>& collection_ids) = 0;
  // Waits at most `timeout_ms` for the connection to the server to be up, starting an
  // attempt if none is under way; whether it is. (Streams opened while it is down fail
  // at once.)
  virtual bool WaitForConnected(int timeout_ms) { return true; }
};

}  // namespace ferry::net

#endif  // FERRY_NET_CLIENT_H_
