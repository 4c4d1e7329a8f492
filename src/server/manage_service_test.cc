#include "src/server/manage_service.h"

#include <string>

#include "gtest/gtest.h"
#include "src/core/limits.h"
#include "src/core/strings.h"

namespace ferry::server {
namespace {

constexpr int64_t kStartMs = 1'700'000'000'000;

// The first kLoginFailuresFree failures cost nothing; each one after that blocks the
// user for twice as long as the one before (1 s, 2 s, 4 s, ...), up to
// kLoginLockoutMsMax. (ManageService asks before it checks the passphrase, so a right
// one waits too: FerrydTest.FailedLoginsAreRateLimited.)
TEST(LoginThrottleTest, EachFailurePastTheFreeOnesDoublesTheWait) {
  LoginThrottle throttle;
  int64_t now_ms = kStartMs;
  for (int i = 0; i < kLoginFailuresFree; ++i) {
    ASSERT_TRUE(throttle.Check("alice", now_ms).ok()) << i;
    throttle.RecordFailure("alice", now_ms);
  }
  ASSERT_TRUE(throttle.Check("alice", now_ms).ok());
  // 1 s, 2 s, 4 s, ..., capped from the 11th on (1024 s > 15 min): 14 cover the cap.
  int64_t expected_wait_ms = 1000;
  for (int over = 1; over <= 14; ++over) {
    throttle.RecordFailure("alice", now_ms);
    // Blocked until exactly now + the wait, and told how long in seconds.
    absl::Status blocked = throttle.Check("alice", now_ms + expected_wait_ms - 1);
    EXPECT_EQ(blocked.code(), absl::StatusCode::kResourceExhausted) << over;
    EXPECT_NE(blocked.message().find("retry in 1 s"), std::string::npos) << blocked;
    blocked = throttle.Check("alice", now_ms);
    EXPECT_NE(blocked.message().find(
                  StrCat("retry in ", (expected_wait_ms + 999) / 1000, " s")),
              std::string::npos)
        << blocked;
    EXPECT_TRUE(throttle.Check("alice", now_ms + expected_wait_ms).ok()) << over;
    now_ms += expected_wait_ms;  // the next attempt comes as soon as it may
    expected_wait_ms = std::min(expected_wait_ms * 2, kLoginLockoutMsMax);
  }
  // Another user is not slowed by alice's failures.
  EXPECT_TRUE(throttle.Check("bob", now_ms).ok());
  // A success starts alice over: the free failures again.
  throttle.RecordSuccess("alice");
  for (int i = 0; i < kLoginFailuresFree; ++i) {
    throttle.RecordFailure("alice", now_ms);
    EXPECT_TRUE(throttle.Check("alice", now_ms).ok()) << i;
  }
  throttle.RecordFailure("alice", now_ms);
  EXPECT_EQ(throttle.Check("alice", now_ms).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(throttle.Check("alice", now_ms + 1000).ok());
}

}  // namespace
}  // namespace ferry::server
