// A Backend that forwards every call to another one, so that a decorator (a fault in a
// test, say) overrides only the calls it changes.
#ifndef FERRY_SERVER_BACKEND_BACKEND_WRAPPER_H_
#define FERRY_SERVER_BACKEND_BACKEND_WRAPPER_H_

#include <cassert>

#include "src/server/backend/backend.h"

namespace ferry::server {

class BackendWrapper : public Backend {
 public:
  // REQUIRES: `target` outlives the wrapper.
  explicit BackendWrapper(Backend* target) : target_(target) {
    assert(target != nullptr);
  }

  std::string_view Name() const override { return target_->Name(); }
  absl::Status CreateAccount(const AccountRecord& account,
                             const DeviceRecord& first_device) override {
    return target_->CreateAccount(account, first_device);
  }
  absl::StatusOr<AccountRecord> GetAccountByUser(std::string_view user) override {
    return target_->GetAccountByUser(user);
  }
  absl::Status CreateDevice(const DeviceRecord& device) override {
    return target_->CreateDevice(device);
  }
  absl::StatusOr<DeviceRecord> GetDeviceByTokenHash(
      std::string_view token_hash) override {
    return target_->GetDeviceByTokenHash(token_hash);
  }
  absl::StatusOr<std::vector<DeviceRecord>> ListDevices(
      std::string_view account_id) override {
    return target_->ListDevices(account_id);
  }
  absl::Status RenameDevice(std::string_view account_id, std::string_view device_id,
                            std::string_view name) override {
    return target_->RenameDevice(account_id, device_id, name);
  }
  absl::Status RevokeDevice(std::string_view account_id,
                            std::string_view device_id) override {
    return target_->RevokeDevice(account_id, device_id);
  }
  absl::Status TouchDevice(std::string_view device_id, int64_t now_ms) override {
    return target_->TouchDevice(device_id, now_ms);
  }
  absl::Status CreateCollection(const CollectionRecord& collection) override {
    return target_->CreateCollection(collection);
  }
  absl::StatusOr<CollectionRecord> GetCollection(
      std::string_view collection_id) override {
    return target_->GetCollection(collection_id);
  }
  absl::StatusOr<std::vector<CollectionRecord>> ListCollections(
      std::string_view account_id) override {
    return target_->ListCollections(account_id);
  }
  absl::StatusOr<LeaseRecord> AcquireLease(std::string_view collection_id,
                                           std::string_view device_id, int64_t now_ms,
                                           int64_t ttl_ms) override {
    return target_->AcquireLease(collection_id, device_id, now_ms, ttl_ms);
  }
  absl::StatusOr<LeaseRecord> RenewLease(std::string_view collection_id,
                                         std::string_view device_id, uint64_t token,
                                         int64_t now_ms, int64_t ttl_ms) override {
    return target_->RenewLease(collection_id, device_id, token, now_ms, ttl_ms);
  }
  absl::Status ReleaseLease(std::string_view collection_id, std::string_view device_id,
                            uint64_t token, int64_t now_ms) override {
    return target_->ReleaseLease(collection_id, device_id, token, now_ms);
  }
  absl::StatusOr<AppendResult> Append(const AppendRecord& append) override {
    return target_->Append(append);
  }
  absl::StatusOr<PullResult> Pull(std::string_view collection_id, uint64_t after_seq,
                                  uint32_t limit, size_t bytes_max) override {
    return target_->Pull(collection_id, after_seq, limit, bytes_max);
  }
  absl::StatusOr<uint64_t> Head(std::string_view collection_id) override {
    return target_->Head(collection_id);
  }
  absl::StatusOr<std::vector<bool>> HasChunks(
      std::string_view collection_id, const std::vector<std::string>& ids) override {
    return target_->HasChunks(collection_id, ids);
  }
  absl::StatusOr<size_t> PutChunks(
      std::string_view collection_id,
      const std::vector<std::pair<std::string, std::string>>& chunks) override {
    return target_->PutChunks(collection_id, chunks);
  }
  absl::StatusOr<std::string> GetChunk(std::string_view collection_id,
                                       std::string_view id) override {
    return target_->GetChunk(collection_id, id);
  }
  absl::Status FollowHeads(HeadMoved moved, std::function<void()> maybe_missed) override {
    return target_->FollowHeads(std::move(moved), std::move(maybe_missed));
  }

 private:
  Backend* const target_;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_BACKEND_BACKEND_WRAPPER_H_
