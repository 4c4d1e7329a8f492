// Checks of names and ids that arrive from the network.
#ifndef FERRY_SERVER_VALIDATE_H_
#define FERRY_SERVER_VALIDATE_H_

#include <string_view>

#include "absl/status/status.h"
#include "src/core/strings.h"

namespace ferry::server {

// A name a person chose: 1..bytes_max bytes, no control characters.
inline absl::Status CheckName(std::string_view what, std::string_view name,
                              size_t bytes_max) {
  if (name.empty() || name.size() > bytes_max) {
    return absl::InvalidArgumentError(
        StrCat(what, " must be 1 to ", bytes_max, " bytes"));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(StrCat(what, " holds a control character"));
    }
  }
  return absl::OkStatus();
}

// Bytes sealed by a client (the server cannot read them): 1..bytes_max bytes.
inline absl::Status CheckSealed(std::string_view what, std::string_view sealed,
                                size_t bytes_max) {
  if (sealed.empty() || sealed.size() > bytes_max) {
    return absl::InvalidArgumentError(
        StrCat("sealed ", what, " must be 1 to ", bytes_max, " bytes"));
  }
  return absl::OkStatus();
}

// An id made by seal::RandomId(): 32 lowercase hex digits.
inline absl::Status CheckId(std::string_view what, std::string_view id) {
  bool ok = id.size() == 32;
  for (char c : id) ok = ok && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  if (!ok) return absl::InvalidArgumentError(StrCat(what, " must be 32 hex digits"));
  return absl::OkStatus();
}

}  // namespace ferry::server

#endif  // FERRY_SERVER_VALIDATE_H_
