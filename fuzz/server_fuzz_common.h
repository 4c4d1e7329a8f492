// Shared by store_request_fuzz and manage_request_fuzz: the real Store and Manage
// services over an SQLite backend in a fresh directory (on /dev/shm when there is one,
// so fsync costs nothing; removed at exit), made once per process, with two accounts,
// each with a device and a collection of a fixed id, and calls made in process with a
// grpc::ServerContext that carries the metadata a real call would.
//
// Input layout of both targets: byte 0 picks the method, byte 1 the caller
// (Caller below), the rest is the request message.
#ifndef FERRY_FUZZ_SERVER_FUZZ_COMMON_H_
#define FERRY_FUZZ_SERVER_FUZZ_COMMON_H_

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/server_context.h>
#include <grpcpp/test/server_context_test_spouse.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "src/core/clock.h"
#include "src/seal/seal.h"
#include "src/server/auth.h"
#include "src/server/backend/backend.h"
#include "src/server/head_notifier.h"
#include "src/server/manage_service.h"
#include "src/server/store_service.h"

namespace ferry::fuzz {

// The collection of the main account, and one of another account.
inline constexpr std::string_view kOwnCollection = "00112233445566778899aabbccddeeff";
inline constexpr std::string_view kOtherCollection = "ffeeddccbbaa99887766554433221100";
// An envelope header whose device_id is this is rewritten to the caller's device id,
// so that appends can get past the device check.
inline constexpr std::string_view kDevicePlaceholder = "DEVICE";

// Who makes a call (byte 1 of the input, modulo 4).
enum Caller { kOwnDevice = 0, kNoToken = 1, kMalformedToken = 2, kUnknownToken = 3 };

inline void Check(bool ok) {
  if (!ok) std::abort();
}

// A grpc::Status a handler may answer to input from the network: OK or a code that
// tells the client what it did wrong; never UNKNOWN or INTERNAL, never an empty message.
inline void CheckStatus(const grpc::Status& status) {
  if (status.ok()) return;
  switch (status.error_code()) {
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
      break;
    default:
      std::fprintf(stderr, "improper status %d: %s\n", status.error_code(),
                   status.error_message().c_str());
      std::abort();
  }
  Check(!status.error_message().empty());
}

inline void CheckStatus(const absl::Status& status) {
  CheckStatus(grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                           std::string(status.message())));
}

// A clock that moves 250 ms per reading, so leases expire within a run.
class SteppingClock final : public Clock {
 public:
  int64_t NowMs() override { return now_ms_ += 250; }

 private:
  int64_t now_ms_ = 1'700'000'000'000;
};

class FuzzServer {
 public:
  static FuzzServer& Get() {
    static FuzzServer* server = new FuzzServer();
    return *server;
  }

  server::StoreService& store() { return *store_; }
  server::ManageService& manage() { return *manage_; }
  const std::string& device_id() const { return device_id_; }
  const std::string& other_device_id() const { return other_device_id_; }

  // The server side of one call by `caller`. The spouse owns the metadata strings
  // the context points to, so both live as long as the call.
  struct Call {
    grpc::ServerContext context;
    grpc::testing::ServerContextTestSpouse spouse{&context};
  };
  std::unique_ptr<Call> Context(uint8_t caller) const {
    auto call = std::make_unique<Call>();
    switch (caller % 4) {
      case kOwnDevice:
        call->spouse.AddClientMetadata("authorization", "Bearer " + token_);
        break;
      case kNoToken:
        break;
      case kMalformedToken:
        call->spouse.AddClientMetadata("authorization", token_);
        break;
      default:
        call->spouse.AddClientMetadata("authorization", "Bearer 0123456789abcdef");
        break;
    }
    return call;
  }

 private:
  FuzzServer() {
    seal::Init();
    // Requests with strings that are not UTF-8 fail to parse, as they should; protobuf
    // would log each one.
    google::protobuf::SetLogHandler(nullptr);
    std::string dir = (::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    dir += "/ferry-fuzz-server-XXXXXX";
    Check(::mkdtemp(dir.data()) != nullptr);
    // Removed when the process exits normally (libFuzzer and the replay both exit);
    // a crash leaves it for inspection.
    static std::string* to_remove = new std::string(dir);
    std::atexit([] { std::filesystem::remove_all(*to_remove); });
    auto backend = server::OpenSqliteBackend(dir);
    Check(backend.ok());
    backend_ = *std::move(backend);
    auth_ = std::make_unique<server::Authenticator>(backend_.get(), &clock_);
    manage_ = std::make_unique<server::ManageService>(backend_.get(), auth_.get(),
                                                      &clock_, std::string(32, 's'));
    store_ = std::make_unique<server::StoreService>(backend_.get(), auth_.get(), &clock_,
                                                    &heads_);
    other_device_id_ = MakeAccount("other", kOtherCollection, nullptr);
    device_id_ = MakeAccount("fuzz", kOwnCollection, &token_);
  }

  // An account `user` with a device (its id returned, its token in `token`) and a
  // collection `collection_id`.
  std::string MakeAccount(const std::string& user, std::string_view collection_id,
                          std::string* token) {
    v1::CreateAccountRequest request;
    request.set_user(user);
    request.mutable_kdf()->set_alg(seal::kKdfArgon2id13);
    request.mutable_kdf()->set_ops_limit(1);
    request.mutable_kdf()->set_mem_limit_bytes(8192);
    request.mutable_kdf()->set_salt(std::string(seal::kSaltBytes, 'x'));
    request.set_auth_key(std::string(seal::kKeyBytes, 'k'));
    request.set_device_name("sealed name");
    v1::LoginResponse login;
    grpc::ServerContext unused;
    grpc::Status created = manage_->CreateAccount(&unused, &request, &login);
    if (!created.ok()) std::fprintf(stderr, "%s\n", created.error_message().c_str());
    Check(created.ok());
    Call call;
    call.spouse.AddClientMetadata("authorization", "Bearer " + login.token());
    v1::CreateCollectionRequest create;
    create.mutable_collection()->set_collection_id(std::string(collection_id));
    create.mutable_collection()->set_metadata("sealed metadata");
    create.mutable_collection()->set_wrapped_key("wrapped key");
    create.mutable_collection()->set_key_epoch(1);
    v1::Collection collection;
    Check(manage_->CreateCollection(&call.context, &create, &collection).ok());
    if (token != nullptr) *token = login.token();
    return login.device_id();
  }

  SteppingClock clock_;
  server::HeadNotifier heads_;
  std::unique_ptr<server::Backend> backend_;
  std::unique_ptr<server::Authenticator> auth_;
  std::unique_ptr<server::ManageService> manage_;
  std::unique_ptr<server::StoreService> store_;
  std::string token_, device_id_, other_device_id_;
};

}  // namespace ferry::fuzz

#endif  // FERRY_FUZZ_SERVER_FUZZ_COMMON_H_
