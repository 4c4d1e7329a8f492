// The lease and fencing rules, shared by every backend so that they cannot drift
// apart. Each backend reads the lease row and calls these inside the transaction that
// then writes it (or appends).
#ifndef FERRY_SERVER_BACKEND_LEASE_RULES_H_
#define FERRY_SERVER_BACKEND_LEASE_RULES_H_

#include <string_view>

#include "absl/status/status.h"
#include "src/core/strings.h"
#include "src/server/backend/backend.h"

namespace ferry::server {

inline bool LeaseIsLive(const LeaseRecord& lease, int64_t now_ms) {
  return !lease.device_id.empty() && lease.expires_ms > now_ms;
}

// Acquire: free, expired or already ours.
inline absl::Status CheckAcquire(const LeaseRecord& lease, std::string_view device_id,
                                 int64_t now_ms) {
  if (LeaseIsLive(lease, now_ms) && lease.device_id != device_id) {
    return absl::FailedPreconditionError(StrCat(
        "the lease is held by device ", lease.device_id, " until ", lease.expires_ms));
  }
  return absl::OkStatus();
}

// Renew: ours, with the current token, and not expired.
inline absl::Status CheckRenew(const LeaseRecord& lease, std::string_view device_id,
                               uint64_t token, int64_t now_ms) {
  if (!LeaseIsLive(lease, now_ms) || lease.device_id != device_id ||
      lease.fencing_token != token) {
    return absl::FailedPreconditionError("the lease is not held with this fencing token");
  }
  return absl::OkStatus();
}

// Release: true when the lease is ours with this token and should be freed; false when
// there is nothing to free (it is free or expired); an error while another device, or
// another token of ours, holds it live.
inline absl::StatusOr<bool> CheckRelease(const LeaseRecord& lease,
                                         std::string_view device_id, uint64_t token,
                                         int64_t now_ms) {
  if (lease.device_id == device_id && lease.fencing_token == token) return true;
  if (!LeaseIsLive(lease, now_ms)) return false;
  return absl::FailedPreconditionError("the lease is not held with this fencing token");
}

// Append: while a lease is live only its holder, with the current token, may append.
// With no live lease, a token of 0 (none held) or the current one is accepted; an older
// token is stale (another device has held the collection since) and a larger one was
// never issued.
inline absl::Status CheckAppendFencing(const LeaseRecord& lease, const AppendRecord& a) {
  bool live = LeaseIsLive(lease, a.now_ms);
  if (live && lease.device_id != a.device_id) {
    return absl::FailedPreconditionError(
        StrCat("collection is leased to device ", lease.device_id));
  }
  if (live || a.fencing_token != 0) {
    if (a.fencing_token < lease.fencing_token) {
      return absl::FailedPreconditionError(
          "stale fencing token: acquire the lease again");
    }
    if (a.fencing_token > lease.fencing_token) {
      return absl::FailedPreconditionError("fencing token was never issued");
    }
  }
  return absl::OkStatus();
}

}  // namespace ferry::server

#endif  // FERRY_SERVER_BACKEND_LEASE_RULES_H_
