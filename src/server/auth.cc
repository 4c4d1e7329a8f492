#include "src/server/auth.h"

#include <grpcpp/server_context.h>

#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/seal/seal.h"

namespace ferry::server {
namespace {

constexpr std::string_view kBearer = "Bearer ";
constexpr size_t kTokenBytesMax = 256;
// last_seen_ms is written at most this often per device, not on every call.
constexpr int64_t kTouchIntervalMs = 60 * 1000;
// Collection owners remembered by CheckAccess; the cache starts over when full.
constexpr size_t kOwnersCachedMax = 1 << 16;

}  // namespace

absl::StatusOr<DeviceRecord> Authenticator::Authenticate(
    const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError("no device token: log in first (ferry login)");
  }
  std::string_view value(it->second.data(), it->second.size());
  if (!value.starts_with(kBearer) || value.size() > kTokenBytesMax) {
    return absl::UnauthenticatedError("malformed authorization header");
  }
  std::string token(value.substr(kBearer.size()));
  absl::StatusOr<DeviceRecord> device =
      backend_->GetDeviceByTokenHash(seal::HashToken(token));
  if (absl::IsNotFound(device.status())) {
    return absl::UnauthenticatedError("unknown device token: log in again");
  }
  FERRY_RETURN_IF_ERROR(device.status());
  if (device->revoked) {
    return absl::UnauthenticatedError("this device was revoked: log in again");
  }
  int64_t now_ms = clock_->NowMs();
  if (now_ms - device->last_seen_ms >= kTouchIntervalMs) {
    // last_seen_ms is only shown to the person (`ferry devices`); a touch that fails
    // (a full disk, a read-only database) must not refuse a call that needs no write,
    // such as a pull. The next call tries again.
    if (backend_->TouchDevice(device->device_id, now_ms).ok()) {
      device->last_seen_ms = now_ms;
    }
  }
  return device;
}

absl::StatusOr<CollectionRecord> Authenticator::Authorize(
    const DeviceRecord& device, std::string_view collection_id) {
  absl::StatusOr<CollectionRecord> collection = backend_->GetCollection(collection_id);
  if (absl::IsNotFound(collection.status()) ||
      (collection.ok() && collection->account_id != device.account_id)) {
    return absl::PermissionDeniedError("collection not found or not this account's");
  }
  return collection;
}

absl::Status Authenticator::CheckAccess(const DeviceRecord& device,
                                        std::string_view collection_id) {
  std::string id(collection_id);
  {
    std::lock_guard lock(mu_);
    auto it = owners_.find(id);
    if (it != owners_.end()) {
      if (it->second == device.account_id) return absl::OkStatus();
      return absl::PermissionDeniedError("collection not found or not this account's");
    }
  }
  FERRY_ASSIGN_OR_RETURN(CollectionRecord collection, Authorize(device, collection_id));
  std::lock_guard lock(mu_);
  if (owners_.size() >= kOwnersCachedMax) owners_.clear();
  owners_.emplace(std::move(id), collection.account_id);
  return absl::OkStatus();
}

}  // namespace ferry::server
