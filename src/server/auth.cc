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
// Collection owners remembered by CheckAccess, and devices by Authenticate; each cache
// starts over when full.
constexpr size_t kOwnersCachedMax = 1 << 16;
constexpr size_t kDevicesCachedMax = 1 << 16;

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
  std::string token_hash = seal::HashToken(value.substr(kBearer.size()));
  int64_t now_ms = clock_->NowMs();
  std::optional<DeviceRecord> device = Cached(token_hash, now_ms);
  if (!device.has_value()) {
    uint64_t forgets = Forgets();
    absl::StatusOr<DeviceRecord> read = backend_->GetDeviceByTokenHash(token_hash);
    if (absl::IsNotFound(read.status())) {
      return absl::UnauthenticatedError("unknown device token: log in again");
    }
    FERRY_RETURN_IF_ERROR(read.status());
    if (read->revoked) {
      return absl::UnauthenticatedError("this device was revoked: log in again");
    }
    Remember(*read, now_ms, forgets);
    device = *std::move(read);
  }
  if (now_ms - device->last_seen_ms >= kTouchIntervalMs) {
    // last_seen_ms is only shown to the person (`ferry devices`); a touch that fails
    // (a full disk, a read-only database) must not refuse a call that needs no write,
    // such as a pull. The next call tries again.
    if (backend_->TouchDevice(device->device_id, now_ms).ok()) {
      device->last_seen_ms = now_ms;
      std::lock_guard lock(mu_);
      auto cached = devices_.find(token_hash);
      if (cached != devices_.end()) cached->second.device.last_seen_ms = now_ms;
    }
  }
  return *std::move(device);
}

std::optional<DeviceRecord> Authenticator::Cached(const std::string& token_hash,
                                                  int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = devices_.find(token_hash);
  if (it == devices_.end()) return std::nullopt;
  // A clock that went back also makes the entry stale.
  int64_t age_ms = now_ms - it->second.read_ms;
  if (age_ms < 0 || age_ms >= kDeviceCacheMs) {
    devices_.erase(it);
    return std::nullopt;
  }
  return it->second.device;
}

uint64_t Authenticator::Forgets() {
  std::lock_guard lock(mu_);
  return forgets_;
}

void Authenticator::Remember(const DeviceRecord& device, int64_t read_ms,
                             uint64_t forgets) {
  std::lock_guard lock(mu_);
  // A Forget() since the read may be of this device, read before its revocation.
  if (forgets != forgets_) return;
  if (devices_.size() >= kDevicesCachedMax) devices_.clear();
  devices_.insert_or_assign(device.token_hash, CachedDevice{device, read_ms});
}

void Authenticator::Forget(std::string_view device_id) {
  std::lock_guard lock(mu_);
  forgets_++;
  std::erase_if(devices_, [&](const auto& entry) {
    return entry.second.device.device_id == device_id;
  });
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
