// Authorization of every call but account creation and login: the bearer token names
// a device; a device reaches only its own account's collections.
#ifndef FERRY_SERVER_AUTH_H_
#define FERRY_SERVER_AUTH_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "src/core/clock.h"
#include "src/server/backend/backend.h"

namespace grpc {
class ServerContext;
}

namespace ferry::server {

class Authenticator {
 public:
  Authenticator(Backend* backend, Clock* clock) : backend_(backend), clock_(clock) {}

  // The calling device, from `authorization: Bearer <token>` metadata. UNAUTHENTICATED
  // when the token is absent, malformed, unknown or revoked.
  //
  // A device read from the backend is remembered for kDeviceCacheMs, so that a device
  // making many calls costs one database read a second, not one per call. Forget()
  // makes a revocation through this ferryd take effect at once; one made through
  // another ferryd sharing the database takes effect here within kDeviceCacheMs.
  absl::StatusOr<DeviceRecord> Authenticate(const grpc::ServerContext& context);
  static constexpr int64_t kDeviceCacheMs = 1000;

  // Drops what is remembered of `device_id`: call once its revocation is committed.
  void Forget(std::string_view device_id);

  // The collection, when `device` may reach it. PERMISSION_DENIED when it belongs to
  // another account or does not exist (the two are not told apart).
  absl::StatusOr<CollectionRecord> Authorize(const DeviceRecord& device,
                                             std::string_view collection_id);
  // Authorize without the record, answered from memory after the first time: a
  // collection's account never changes and collections are never deleted, so the owner
  // once read stays right (if collections ever move or go, this cache must follow).
  // Saves one database round trip on every Store call.
  absl::Status CheckAccess(const DeviceRecord& device, std::string_view collection_id);

 private:
  Backend* const backend_;
  Clock* const clock_;
  struct CachedDevice {
    DeviceRecord device;  // never a revoked one
    int64_t read_ms = 0;  // when its read began (Clock::MonotonicMs)
    uint64_t read = 0;    // which read (reads_ when it began)
  };
  // The device of `token_hash` when its read began less than kDeviceCacheMs ago and
  // after the device was last forgotten.
  std::optional<DeviceRecord> Cached(const std::string& token_hash, int64_t now_ms);
  // Numbers a read of the backend about to begin.
  uint64_t BeginRead();
  void Remember(const DeviceRecord& device, int64_t read_ms, uint64_t read);

  std::mutex mu_;
  std::unordered_map<std::string, std::string> owners_;    // collection -> account; mu_
  std::unordered_map<std::string, CachedDevice> devices_;  // by token hash; mu_
  // Device id -> reads_ when it was last forgotten: an entry from a read begun no
  // later is not used (whether it was remembered before the revocation or by a read
  // that overlapped it). Bounded: when it is cleared, every read begun so far counts
  // as forgotten (forgotten_before_).
  std::unordered_map<std::string, uint64_t> forgotten_;  // guarded by mu_
  uint64_t forgotten_before_ = 0;                        // guarded by mu_
  uint64_t reads_ = 0;                                   // reads begun; guarded by mu_
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_AUTH_H_
