// Authorization of every call but account creation and login: the bearer token names
// a device; a device reaches only its own account's collections.
#ifndef FERRY_SERVER_AUTH_H_
#define FERRY_SERVER_AUTH_H_

#include <mutex>
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
  absl::StatusOr<DeviceRecord> Authenticate(const grpc::ServerContext& context);

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
  std::mutex mu_;
  std::unordered_map<std::string, std::string> owners_;  // collection -> account; mu_
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_AUTH_H_
