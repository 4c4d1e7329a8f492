// String concatenation over std::string_view. Debian's Abseil is built with its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat does not take
// std::string_view; ferry code uses this instead.
#ifndef FERRY_CORE_STRINGS_H_
#define FERRY_CORE_STRINGS_H_

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace ferry {
namespace strings_internal {

inline void Append(std::string& out, std::string_view piece) { out.append(piece); }
inline void Append(std::string& out, const char* piece) { out.append(piece); }
inline void Append(std::string& out, const std::string& piece) { out.append(piece); }
inline void Append(std::string& out, absl::string_view piece) {
  out.append(piece.data(), piece.size());
}
inline void Append(std::string& out, char c) { out.push_back(c); }
template <typename T>
requires(std::integral<T> && !std::same_as<T, char> &&
         !std::same_as<T, bool>) inline void Append(std::string& out, T number) {
  out.append(std::to_string(number));
}

}  // namespace strings_internal

// Concatenates strings, string views, characters and integers.
template <typename... Pieces>
std::string StrCat(const Pieces&... pieces) {
  std::string out;
  (strings_internal::Append(out, pieces), ...);
  return out;
}

// Lower-case hex of `bytes`, two digits a byte.
inline std::string Hex(std::string_view bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// `value` as 16 lower-case hex digits.
inline std::string Hex64(uint64_t value) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[i] = kDigits[value & 15];
  return out;
}

// 64-bit FNV-1a: a fast, stable, non-cryptographic hash (names derived from content,
// trace hashes). `hash` continues an earlier one.
inline constexpr uint64_t kFnv1aOffset = 14695981039346656037ull;
inline uint64_t Fnv1a64(std::string_view text, uint64_t hash = kFnv1aOffset) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

}  // namespace ferry

#endif  // FERRY_CORE_STRINGS_H_
