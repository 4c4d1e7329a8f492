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
// Revocations remembered, to tell entries from before them; cleared when full.
constexpr size_t kForgottenMax = 1 << 12;

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
  const int64_t now_ms = clock_->NowMs();
  const int64_t age_from_ms = clock_->MonotonicMs();
  std::optional<DeviceRecord> device = Cached(token_hash, age_from_ms);
  if (!device.has_value()) {
    const uint64_t begun = BeginRead();
    absl::StatusOr<DeviceRecord> read = backend_->GetDeviceByTokenHash(token_hash);
    if (absl::IsNotFound(read.status())) {
      return absl::UnauthenticatedError("unknown device token: log in again");
    }
    FERRY_RETURN_IF_ERROR(read.status());
    if (read->revoked) {
      return absl::UnauthenticatedError("this device was revoked: log in again");
    }
    Remember(*read, age_from_ms, begun);
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
  const CachedDevice& cached = it->second;
  const int64_t age_ms = now_ms - cached.read_ms;
  auto forgotten = forgotten_.find(cached.device.device_id);
  if (age_ms < 0 || age_ms >= kDeviceCacheMs || cached.read <= forgotten_before_ ||
      (forgotten != forgotten_.end() && cached.read <= forgotten->second)) {
    devices_.erase(it);
    return std::nullopt;
  }
  return cached.device;
}

uint64_t Authenticator::BeginRead() {
  std::lock_guard lock(mu_);
  return ++reads_;
}

void Authenticator::Remember(const DeviceRecord& device, int64_t read_ms, uint64_t read) {
  std::lock_guard lock(mu_);
  if (devices_.size() >= kDevicesCachedMax) devices_.clear();
  devices_.insert_or_assign(device.token_hash, CachedDevice{device, read_ms, read});
}

void Authenticator::Forget(std::string_view device_id) {
  std::lock_guard lock(mu_);
  if (forgotten_.size() >= kForgottenMax) {
    forgotten_.clear();
    forgotten_before_ = reads_;
  } else {
    forgotten_.insert_or_assign(std::string(device_id), reads_);
  }
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
