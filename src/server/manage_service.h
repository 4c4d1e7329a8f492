// The Manage gRPC service: accounts, login, devices, collections and leases.
#ifndef FERRY_SERVER_MANAGE_SERVICE_H_
#define FERRY_SERVER_MANAGE_SERVICE_H_

#include <map>
#include <mutex>
#include <string>

#include "proto/ferry/v1/manage.grpc.pb.h"
#include "src/core/clock.h"
#include "src/server/auth.h"
#include "src/server/backend/backend.h"

namespace ferry::server {

// Counts failed logins per user name; past kLoginFailuresFree, each further failure
// doubles the wait before the next attempt is even checked. Thread-safe.
class LoginThrottle {
 public:
  // RESOURCE_EXHAUSTED while `user` must wait.
  absl::Status Check(const std::string& user, int64_t now_ms);
  void RecordFailure(const std::string& user, int64_t now_ms);
  void RecordSuccess(const std::string& user);

 private:
  struct State {
    int failures = 0;
    int64_t blocked_until_ms = 0;
  };
  static constexpr size_t kUsersTrackedMax = 100000;
  std::mutex mu_;
  std::map<std::string, State> users_;  // guarded by mu_
};

class ManageService final : public v1::Manage::Service {
 public:
  // `secret` (32 bytes, kept by the server) makes the login parameters of unknown
  // users look like real ones, so user names cannot be probed.
  ManageService(Backend* backend, Authenticator* auth, Clock* clock, std::string secret)
      : backend_(backend), auth_(auth), clock_(clock), secret_(std::move(secret)) {}

  grpc::Status CreateAccount(grpc::ServerContext* context,
                             const v1::CreateAccountRequest* request,
                             v1::LoginResponse* response) override;
  grpc::Status GetLoginParams(grpc::ServerContext* context,
                              const v1::LoginParamsRequest* request,
                              v1::KdfParams* response) override;
  grpc::Status Login(grpc::ServerContext* context, const v1::LoginRequest* request,
                     v1::LoginResponse* response) override;
  grpc::Status ListDevices(grpc::ServerContext* context,
                           const v1::ListDevicesRequest* request,
                           v1::ListDevicesResponse* response) override;
  grpc::Status RenameDevice(grpc::ServerContext* context,
                            const v1::RenameDeviceRequest* request,
                            v1::Empty* response) override;
  grpc::Status RevokeDevice(grpc::ServerContext* context,
                            const v1::RevokeDeviceRequest* request,
                            v1::Empty* response) override;
  grpc::Status CreateCollection(grpc::ServerContext* context,
                                const v1::CreateCollectionRequest* request,
                                v1::Collection* response) override;
  grpc::Status ListCollections(grpc::ServerContext* context,
                               const v1::ListCollectionsRequest* request,
                               v1::ListCollectionsResponse* response) override;
  grpc::Status AcquireLease(grpc::ServerContext* context, const v1::LeaseRequest* request,
                            v1::Lease* response) override;
  grpc::Status RenewLease(grpc::ServerContext* context, const v1::LeaseRequest* request,
                          v1::Lease* response) override;
  grpc::Status ReleaseLease(grpc::ServerContext* context, const v1::LeaseRequest* request,
                            v1::Empty* response) override;

 private:
  absl::StatusOr<v1::LoginResponse> NewDevice(const std::string& account_id,
                                              const std::string& device_name,
                                              DeviceRecord* record);
  absl::StatusOr<v1::LoginResponse> DoCreateAccount(
      const v1::CreateAccountRequest& request);
  absl::StatusOr<v1::LoginResponse> DoLogin(const v1::LoginRequest& request);
  absl::Status DoLease(const grpc::ServerContext& context,
                       const v1::LeaseRequest& request, int kind, v1::Lease* response);

  Backend* const backend_;
  Authenticator* const auth_;
  Clock* const clock_;
  const std::string secret_;
  LoginThrottle throttle_;
};

}  // namespace ferry::server

#endif  // FERRY_SERVER_MANAGE_SERVICE_H_
