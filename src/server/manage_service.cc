#include "src/server/manage_service.h"

#include <algorithm>

#include "src/core/limits.h"
#include "src/core/status_macros.h"
#include "src/core/strings.h"
#include "src/rpc/status.h"
#include "src/seal/seal.h"
#include "src/server/validate.h"

namespace ferry::server {
namespace {

constexpr int64_t kLockoutMsFirst = 1000;

enum LeaseKind { kAcquire, kRenew, kRelease };

absl::Status CheckKdf(const v1::KdfParams& kdf) {
  if (kdf.alg() != seal::kKdfArgon2id13) {
    return absl::InvalidArgumentError("unknown key derivation algorithm");
  }
  if (kdf.salt().size() != seal::kSaltBytes) {
    return absl::InvalidArgumentError("salt must be 16 bytes");
  }
  if (kdf.ops_limit() < 1 || kdf.ops_limit() > kKdfOpsLimitMax ||
      kdf.mem_limit_bytes() < kKdfMemLimitBytesMin ||
      kdf.mem_limit_bytes() > kKdfMemLimitBytesMax) {
    return absl::InvalidArgumentError("key derivation cost out of range");
  }
  return absl::OkStatus();
}

absl::Status CheckTtl(uint32_t ttl_ms) {
  if (ttl_ms < kLeaseTtlMsMin || ttl_ms > kLeaseTtlMsMax) {
    return absl::InvalidArgumentError(StrCat("lease ttl must be between ", kLeaseTtlMsMin,
                                             " and ", kLeaseTtlMsMax, " ms"));
  }
  return absl::OkStatus();
}

void ToProto(const DeviceRecord& d, bool current, v1::Device* out) {
  out->set_device_id(d.device_id);
  out->set_name(d.name);
  out->set_created_ms(d.created_ms);
  out->set_last_seen_ms(d.last_seen_ms);
  out->set_revoked(d.revoked);
  out->set_current(current);
}

void ToProto(const CollectionRecord& c, v1::Collection* out) {
  out->set_collection_id(c.collection_id);
  out->set_metadata(c.metadata);
  out->set_wrapped_key(c.wrapped_key);
  out->set_key_epoch(c.key_epoch);
  out->set_created_ms(c.created_ms);
}

}  // namespace

absl::Status LoginThrottle::Check(const std::string& user, int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = users_.find(user);
  if (it == users_.end() || it->second.blocked_until_ms <= now_ms)
    return absl::OkStatus();
  int64_t wait_s = (it->second.blocked_until_ms - now_ms + 999) / 1000;
  return absl::ResourceExhaustedError(
      StrCat("too many failed logins for this user: retry in ", wait_s, " s"));
}

void LoginThrottle::RecordFailure(const std::string& user, int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (users_.size() >= kUsersTrackedMax && !users_.contains(user)) {
    // Bounded memory: forget everyone whose block has ended.
    std::erase_if(users_,
                  [&](const auto& e) { return e.second.blocked_until_ms <= now_ms; });
    if (users_.size() >= kUsersTrackedMax) users_.erase(users_.begin());
  }
  State& state = users_[user];
  state.failures += 1;
  int over = state.failures - kLoginFailuresFree;
  if (over > 0) {
    int64_t lockout_ms = kLockoutMsFirst << std::min(over - 1, 20);
    state.blocked_until_ms = now_ms + std::min(lockout_ms, kLoginLockoutMsMax);
  }
}

void LoginThrottle::RecordSuccess(const std::string& user) {
  std::lock_guard lock(mu_);
  users_.erase(user);
}

absl::StatusOr<v1::LoginResponse> ManageService::NewDevice(const std::string& account_id,
                                                           const std::string& device_name,
                                                           DeviceRecord* record) {
  std::string token = seal::NewToken();
  record->device_id = seal::RandomId();
  record->account_id = account_id;
  record->name = device_name;
  record->token_hash = seal::HashToken(token);
  record->created_ms = clock_->NowMs();
  record->last_seen_ms = record->created_ms;
  v1::LoginResponse response;
  response.set_account_id(account_id);
  response.set_device_id(record->device_id);
  response.set_token(token);
  return response;
}

absl::StatusOr<v1::LoginResponse> ManageService::DoCreateAccount(
    const v1::CreateAccountRequest& request) {
  FERRY_RETURN_IF_ERROR(CheckName("user", request.user(), kUserNameBytesMax));
  FERRY_RETURN_IF_ERROR(
      CheckSealed("device name", request.device_name(), kSealedDeviceNameBytesMax));
  FERRY_RETURN_IF_ERROR(CheckKdf(request.kdf()));
  if (request.auth_key().size() != seal::kKeyBytes) {
    return absl::InvalidArgumentError("auth key must be 32 bytes");
  }
  AccountRecord account;
  account.account_id = seal::RandomId();
  account.user = request.user();
  account.kdf_alg = request.kdf().alg();
  account.kdf_ops_limit = request.kdf().ops_limit();
  account.kdf_mem_limit_bytes = request.kdf().mem_limit_bytes();
  account.kdf_salt = request.kdf().salt();
  account.auth_key_hash = seal::HashAuthKey(request.auth_key());
  account.created_ms = clock_->NowMs();
  DeviceRecord device;
  FERRY_ASSIGN_OR_RETURN(v1::LoginResponse response,
                         NewDevice(account.account_id, request.device_name(), &device));
  FERRY_RETURN_IF_ERROR(backend_->CreateAccount(account, device));
  return response;
}

grpc::Status ManageService::CreateAccount(grpc::ServerContext*,
                                          const v1::CreateAccountRequest* request,
                                          v1::LoginResponse* response) {
  absl::StatusOr<v1::LoginResponse> result = DoCreateAccount(*request);
  if (result.ok()) *response = *std::move(result);
  return rpc::ToGrpc(result.status());
}

grpc::Status ManageService::GetLoginParams(grpc::ServerContext*,
                                           const v1::LoginParamsRequest* request,
                                           v1::KdfParams* response) {
  absl::Status valid = CheckName("user", request->user(), kUserNameBytesMax);
  if (!valid.ok()) return rpc::ToGrpc(valid);
  absl::StatusOr<AccountRecord> account = backend_->GetAccountByUser(request->user());
  if (account.ok()) {
    response->set_alg(account->kdf_alg);
    response->set_ops_limit(account->kdf_ops_limit);
    response->set_mem_limit_bytes(account->kdf_mem_limit_bytes);
    response->set_salt(account->kdf_salt);
    return grpc::Status::OK;
  }
  if (!absl::IsNotFound(account.status())) return rpc::ToGrpc(account.status());
  // An unknown user gets plausible parameters with a salt stable for the name.
  seal::KdfParams moderate = seal::KdfParams::Moderate();
  response->set_alg(moderate.alg);
  response->set_ops_limit(moderate.ops_limit);
  response->set_mem_limit_bytes(moderate.mem_limit_bytes);
  response->set_salt(
      seal::HashToken(StrCat(secret_, "/salt/", request->user())).substr(0, 16));
  return grpc::Status::OK;
}

absl::StatusOr<v1::LoginResponse> ManageService::DoLogin(
    const v1::LoginRequest& request) {
  FERRY_RETURN_IF_ERROR(CheckName("user", request.user(), kUserNameBytesMax));
  FERRY_RETURN_IF_ERROR(
      CheckSealed("device name", request.device_name(), kSealedDeviceNameBytesMax));
  int64_t now_ms = clock_->NowMs();
  FERRY_RETURN_IF_ERROR(throttle_.Check(request.user(), now_ms));
  absl::StatusOr<AccountRecord> account = backend_->GetAccountByUser(request.user());
  if (!account.ok() && !absl::IsNotFound(account.status())) return account.status();
  // The hash is computed for unknown users too, so both answers take the same time.
  std::string presented = seal::HashAuthKey(request.auth_key());
  bool match =
      account.ok() && seal::ConstantTimeEquals(presented, account->auth_key_hash);
  if (!match) {
    throttle_.RecordFailure(request.user(), now_ms);
    return absl::UnauthenticatedError("wrong user name or passphrase");
  }
  throttle_.RecordSuccess(request.user());
  DeviceRecord device;
  FERRY_ASSIGN_OR_RETURN(v1::LoginResponse response,
                         NewDevice(account->account_id, request.device_name(), &device));
  FERRY_RETURN_IF_ERROR(backend_->CreateDevice(device));
  return response;
}

grpc::Status ManageService::Login(grpc::ServerContext*, const v1::LoginRequest* request,
                                  v1::LoginResponse* response) {
  absl::StatusOr<v1::LoginResponse> result = DoLogin(*request);
  if (result.ok()) *response = *std::move(result);
  return rpc::ToGrpc(result.status());
}

grpc::Status ManageService::ListDevices(grpc::ServerContext* context,
                                        const v1::ListDevicesRequest*,
                                        v1::ListDevicesResponse* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::StatusOr<std::vector<DeviceRecord>> devices =
      backend_->ListDevices(me->account_id);
  if (!devices.ok()) return rpc::ToGrpc(devices.status());
  for (const DeviceRecord& d : *devices) {
    ToProto(d, d.device_id == me->device_id, response->add_devices());
  }
  return grpc::Status::OK;
}

grpc::Status ManageService::RenameDevice(grpc::ServerContext* context,
                                         const v1::RenameDeviceRequest* request,
                                         v1::Empty*) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::Status valid =
      CheckSealed("device name", request->name(), kSealedDeviceNameBytesMax);
  if (!valid.ok()) return rpc::ToGrpc(valid);
  return rpc::ToGrpc(
      backend_->RenameDevice(me->account_id, request->device_id(), request->name()));
}

grpc::Status ManageService::RevokeDevice(grpc::ServerContext* context,
                                         const v1::RevokeDeviceRequest* request,
                                         v1::Empty*) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::Status revoked = backend_->RevokeDevice(me->account_id, request->device_id());
  // Also after an error: a lost connection may have cut off the reply of a revocation
  // that committed. Forgetting a device that is not revoked costs one read.
  auth_->Forget(request->device_id());
  return rpc::ToGrpc(revoked);
}

grpc::Status ManageService::CreateCollection(grpc::ServerContext* context,
                                             const v1::CreateCollectionRequest* request,
                                             v1::Collection* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  const v1::Collection& c = request->collection();
  absl::Status valid = CheckId("collection id", c.collection_id());
  if (valid.ok() &&
      (c.metadata().size() > kCollectionMetadataBytesMax || c.wrapped_key().empty() ||
       c.wrapped_key().size() > kWrappedKeyBytesMax || c.key_epoch() == 0)) {
    valid = absl::InvalidArgumentError("collection metadata, key or epoch out of bounds");
  }
  if (!valid.ok()) return rpc::ToGrpc(valid);
  CollectionRecord record;
  record.collection_id = c.collection_id();
  record.account_id = me->account_id;
  record.metadata = c.metadata();
  record.wrapped_key = c.wrapped_key();
  record.key_epoch = c.key_epoch();
  record.created_ms = clock_->NowMs();
  absl::Status status = backend_->CreateCollection(record);
  if (status.ok()) ToProto(record, response);
  return rpc::ToGrpc(status);
}

grpc::Status ManageService::ListCollections(grpc::ServerContext* context,
                                            const v1::ListCollectionsRequest*,
                                            v1::ListCollectionsResponse* response) {
  absl::StatusOr<DeviceRecord> me = auth_->Authenticate(*context);
  if (!me.ok()) return rpc::ToGrpc(me.status());
  absl::StatusOr<std::vector<CollectionRecord>> list =
      backend_->ListCollections(me->account_id);
  if (!list.ok()) return rpc::ToGrpc(list.status());
  for (const CollectionRecord& c : *list) ToProto(c, response->add_collections());
  return grpc::Status::OK;
}

absl::Status ManageService::DoLease(const grpc::ServerContext& context,
                                    const v1::LeaseRequest& request, int kind,
                                    v1::Lease* response) {
  FERRY_ASSIGN_OR_RETURN(DeviceRecord me, auth_->Authenticate(context));
  FERRY_RETURN_IF_ERROR(auth_->CheckAccess(me, request.collection_id()));
  int64_t now_ms = clock_->NowMs();
  if (kind == kRelease) {
    return backend_->ReleaseLease(request.collection_id(), me.device_id,
                                  request.fencing_token(), now_ms);
  }
  FERRY_RETURN_IF_ERROR(CheckTtl(request.ttl_ms()));
  LeaseRecord lease;
  if (kind == kAcquire) {
    FERRY_ASSIGN_OR_RETURN(
        lease, backend_->AcquireLease(request.collection_id(), me.device_id, now_ms,
                                      request.ttl_ms()));
  } else {
    FERRY_ASSIGN_OR_RETURN(
        lease, backend_->RenewLease(request.collection_id(), me.device_id,
                                    request.fencing_token(), now_ms, request.ttl_ms()));
  }
  response->set_collection_id(lease.collection_id);
  response->set_fencing_token(lease.fencing_token);
  response->set_expires_ms(lease.expires_ms);
  return absl::OkStatus();
}

grpc::Status ManageService::AcquireLease(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request,
                                         v1::Lease* response) {
  return rpc::ToGrpc(DoLease(*context, *request, kAcquire, response));
}

grpc::Status ManageService::RenewLease(grpc::ServerContext* context,
                                       const v1::LeaseRequest* request,
                                       v1::Lease* response) {
  return rpc::ToGrpc(DoLease(*context, *request, kRenew, response));
}

grpc::Status ManageService::ReleaseLease(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request, v1::Empty*) {
  v1::Lease unused;
  return rpc::ToGrpc(DoLease(*context, *request, kRelease, &unused));
}

}  // namespace ferry::server
