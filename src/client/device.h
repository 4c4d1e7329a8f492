// One device of an account: its credentials and state folder (the "home"), and the
// account-level operations built on the network client and sealing: create account,
// log in, list and create collections, append and read sealed transactions.
//
// Home layout (every file written atomically):
//   device.toml  server, user, ids, token and master key (mode 0600)
//   server.pem   the pinned ferryd certificate
#ifndef FERRY_CLIENT_DEVICE_H_
#define FERRY_CLIENT_DEVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/ferry/v1/change.pb.h"
#include "src/net/client.h"
#include "src/seal/seal.h"

namespace ferry::client {

struct DeviceState {
  std::string server;  // host:port
  std::string user;
  std::string account_id;
  std::string device_id;
  std::string device_name;
  std::string token;
  seal::SecretKey master_key;
};

struct CollectionInfo {
  std::string collection_id;
  std::string name;
  std::string kind;
  seal::CollectionKey key;
};

struct LoginOptions {
  std::string home;
  std::string server;
  std::string user;
  std::string passphrase;
  std::string device_name;
  std::string fingerprint;  // optional: the certificate the server must present
  bool fast_kdf = false;    // account creation only: minimum Argon2id cost (tests)
  // Deadline of each call of this device's connection (the simulation, whose process
  // may be stopped or starved for longer than a real device would wait, sets it long).
  int call_timeout_ms = 15000;
};

class Device {
 public:
  // Loads a logged-in device from `home` and connects (checking the pinned
  // certificate). FAILED_PRECONDITION when `home` holds no device.
  static absl::StatusOr<std::unique_ptr<Device>> Open(const std::string& home);
  // Creates an account on the server and logs this device in; saves the home.
  static absl::StatusOr<std::unique_ptr<Device>> CreateAccount(
      const LoginOptions& options);
  // Logs a new device into an existing account; saves the home.
  static absl::StatusOr<std::unique_ptr<Device>> Login(const LoginOptions& options);

  const DeviceState& state() const { return state_; }
  // The folder this device's state lives in.
  const std::string& home() const { return home_; }
  net::Client& client() { return *client_; }

  // Creates collection `name` of `kind` with a fresh key. ALREADY_EXISTS when the
  // account has a collection of that name.
  absl::StatusOr<CollectionInfo> CreateCollection(const std::string& name,
                                                  const std::string& kind);
  // Every collection of the account, opened with the master key.
  absl::StatusOr<std::vector<CollectionInfo>> ListCollections();
  // NOT_FOUND when there is none of that name.
  absl::StatusOr<CollectionInfo> FindCollection(const std::string& name);

  // Seals `ops` as one transaction on the current head and appends it, retrying on a
  // lost compare-and-append race (bounded). Returns the seq.
  absl::StatusOr<uint64_t> AppendOps(const CollectionInfo& collection,
                                     const std::vector<v1::Op>& ops);
  // Every transaction after `after_seq`, opened and verified, with its seq.
  absl::StatusOr<std::vector<std::pair<uint64_t, v1::Transaction>>> ReadLog(
      const CollectionInfo& collection, uint64_t after_seq);

 private:
  Device(std::string home, DeviceState state, std::unique_ptr<net::Client> client)
      : home_(std::move(home)), state_(std::move(state)), client_(std::move(client)) {}

  std::string home_;
  DeviceState state_;
  std::unique_ptr<net::Client> client_;
};

// The default home: $XDG_DATA_HOME/ferry or ~/.local/share/ferry.
std::string DefaultHome();

}  // namespace ferry::client

#endif  // FERRY_CLIENT_DEVICE_H_
