#include "src/server/auth.h"

#include <grpcpp/server_context.h>
#include <grpcpp/test/server_context_test_spouse.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>

#include "gtest/gtest.h"
#include "src/core/strings.h"
#include "src/seal/seal.h"
#include "src/server/backend/backend_wrapper.h"

namespace ferry::server {
namespace {

class ManualClock final : public Clock {
 public:
  int64_t NowMs() override { return now_ms; }
  int64_t now_ms = 1'700'000'000'000;
};

// TouchDevice answers `touch` (when not OK) without writing; counts the calls, and the
// device reads, running `during_read` (when set) while a read is in progress.
class TouchFaults final : public BackendWrapper {
 public:
  using BackendWrapper::BackendWrapper;
  absl::StatusOr<DeviceRecord> GetDeviceByTokenHash(
      std::string_view token_hash) override {
    ++reads;
    absl::StatusOr<DeviceRecord> read = BackendWrapper::GetDeviceByTokenHash(token_hash);
    if (during_read) during_read();
    return read;
  }
  absl::Status TouchDevice(std::string_view device_id, int64_t now_ms) override {
    ++touches;
    if (!touch.ok()) return touch;
    return BackendWrapper::TouchDevice(device_id, now_ms);
  }
  absl::Status touch;
  int touches = 0;
  int reads = 0;
  std::function<void()> during_read;
};

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seal::Init();
    char pattern[] = "/tmp/ferry-auth-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto opened = OpenSqliteBackend(dir_);
    ASSERT_TRUE(opened.ok()) << opened.status();
    backend_ = *std::move(opened);
    faults_ = std::make_unique<TouchFaults>(backend_.get());
    AccountRecord account;
    account.account_id = seal::RandomId();
    account.user = "alice";
    account.kdf_salt = std::string(16, 's');
    account.auth_key_hash = seal::HashAuthKey(std::string(32, 'k'));
    device_.device_id = seal::RandomId();
    device_.account_id = account.account_id;
    device_.name = "sealed name";
    device_.token_hash = seal::HashToken(token_);
    device_.created_ms = clock_.now_ms;
    device_.last_seen_ms = clock_.now_ms;
    ASSERT_TRUE(backend_->CreateAccount(account, device_).ok());
  }
  void TearDown() override {
    faults_.reset();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  absl::StatusOr<DeviceRecord> Call(Authenticator& auth, const std::string& token) {
    grpc::ServerContext context;
    grpc::testing::ServerContextTestSpouse spouse(&context);
    spouse.AddClientMetadata("authorization", "Bearer " + token);
    return auth.Authenticate(context);
  }

  std::string dir_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TouchFaults> faults_;
  ManualClock clock_;
  DeviceRecord device_;
  const std::string token_ = seal::NewToken();
};

// Remembering when a device was last seen is a write; a call must not fail because
// that write does (a full disk on the server would otherwise refuse even pulls).
TEST_F(AuthenticatorTest, AFailedTouchDoesNotRefuseTheCall) {
  Authenticator auth(faults_.get(), &clock_);
  faults_->touch = absl::ResourceExhaustedError("write: No space left on device");
  clock_.now_ms += 61 * 1000;  // past the interval: this call touches
  absl::StatusOr<DeviceRecord> me = Call(auth, token_);
  ASSERT_TRUE(me.ok()) << me.status();
  EXPECT_EQ(me->device_id, device_.device_id);
  EXPECT_EQ(faults_->touches, 1);
  // Not recorded, so the next call tries again, and once the write works it is kept.
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->touches, 2);
  faults_->touch = absl::OkStatus();
  me = Call(auth, token_);
  ASSERT_TRUE(me.ok()) << me.status();
  EXPECT_EQ(me->last_seen_ms, clock_.now_ms);
  EXPECT_EQ(faults_->touches, 3);
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->touches, 3);  // seen just now: no write
  auto stored = backend_->GetDeviceByTokenHash(seal::HashToken(token_));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->last_seen_ms, clock_.now_ms);
  // A wrong token is still refused, touch or not.
  EXPECT_EQ(Call(auth, seal::NewToken()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthenticatorTest, ADeviceIsReadOncePerCacheInterval) {
  Authenticator auth(faults_.get(), &clock_);
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<DeviceRecord> me = Call(auth, token_);
    ASSERT_TRUE(me.ok()) << me.status();
    EXPECT_EQ(me->device_id, device_.device_id);
  }
  EXPECT_EQ(faults_->reads, 1);
  clock_.now_ms += Authenticator::kDeviceCacheMs - 1;
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 1);
  clock_.now_ms += 1;  // the entry is kDeviceCacheMs old: read again
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 2);
  clock_.now_ms -= 10;  // a clock that goes back does not stretch an entry's life
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 3);
  // Unknown tokens are never remembered: each costs its read, and each is refused.
  const std::string unknown = seal::NewToken();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Call(auth, unknown).status().code(), absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(faults_->reads, 6);
}

TEST_F(AuthenticatorTest, ARevocationThroughThisServerIsAtOnce) {
  Authenticator auth(faults_.get(), &clock_);
  ASSERT_TRUE(Call(auth, token_).ok());
  ASSERT_TRUE(backend_->RevokeDevice(device_.account_id, device_.device_id).ok());
  auth.Forget(device_.device_id);
  absl::StatusOr<DeviceRecord> me = Call(auth, token_);
  EXPECT_EQ(me.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(me.status().message().find("revoked"), std::string::npos) << me.status();
}

// Another ferryd on the same database revoked the device: this one does not hear of
// it, and refuses the token once its entry is kDeviceCacheMs old.
TEST_F(AuthenticatorTest, ARevocationElsewhereIsSeenWithinTheCacheInterval) {
  Authenticator auth(faults_.get(), &clock_);
  ASSERT_TRUE(Call(auth, token_).ok());
  ASSERT_TRUE(backend_->RevokeDevice(device_.account_id, device_.device_id).ok());
  clock_.now_ms += Authenticator::kDeviceCacheMs;
  EXPECT_EQ(Call(auth, token_).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Call(auth, token_).status().code(), absl::StatusCode::kUnauthenticated);
}

// A read that began before a revocation committed must not be remembered after
// Forget(): it would let the revoked device in for another kDeviceCacheMs.
TEST_F(AuthenticatorTest, AReadOverlappingAForgetIsNotRemembered) {
  Authenticator auth(faults_.get(), &clock_);
  faults_->during_read = [&] {
    faults_->during_read = nullptr;
    ASSERT_TRUE(backend_->RevokeDevice(device_.account_id, device_.device_id).ok());
    auth.Forget(device_.device_id);
  };
  // This call read the device before the revocation, so it is let in once.
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(Call(auth, token_).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(faults_->reads, 2);
}

// Revoking one device (or trying to, again and again) neither costs the others their
// entries nor stops them being remembered; only when the record of revocations is full
// does a read that overlapped one stay unremembered.
TEST_F(AuthenticatorTest, ForgettingAnotherDeviceKeepsThisOneRemembered) {
  Authenticator auth(faults_.get(), &clock_);
  ASSERT_TRUE(Call(auth, token_).ok());
  for (int i = 0; i < 100; ++i) auth.Forget("another device");
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 1);

  clock_.now_ms += Authenticator::kDeviceCacheMs;
  faults_->during_read = [&] { auth.Forget("another device"); };
  ASSERT_TRUE(Call(auth, token_).ok());  // read 2, overlapping another's revocation
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 2);

  clock_.now_ms += Authenticator::kDeviceCacheMs;
  faults_->during_read = [&] {
    for (int i = 0; i < 5000; ++i) auth.Forget(StrCat("device ", i));
  };
  ASSERT_TRUE(Call(auth, token_).ok());  // read 3: the record of revocations overflowed
  faults_->during_read = nullptr;
  ASSERT_TRUE(Call(auth, token_).ok());  // read 4, remembered
  ASSERT_TRUE(Call(auth, token_).ok());
  EXPECT_EQ(faults_->reads, 4);
}

}  // namespace
}  // namespace ferry::server
