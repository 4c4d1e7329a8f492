// Fuzzes the path rules on names from peers and from disk: ValidateRelativePath,
// CaseFoldKey, EscapePath and CheckNoCaseCollisions, with invariants checked against
// simple independent readings of the rules in path_rules.h. The input is one path; a
// '\n'-separated list of paths also goes to CheckNoCaseCollisions.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "src/connectors/files/path_rules.h"

namespace {

using ferry::files::kPathBytesMax;
using ferry::files::kPathComponentBytesMax;
using ferry::files::kPathDepthMax;

void Check(bool ok) {
  if (!ok) std::abort();
}

// Strict UTF-8 (shortest form, no surrogates, at most U+10FFFF) with no code point
// below U+0020, none in U+007F..U+009F and no '\\': an independent decoder.
bool CharactersAllowed(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80           ? 1
               : (c >> 5) == 0x6  ? 2
               : (c >> 4) == 0xE  ? 3
               : (c >> 3) == 0x1E ? 4
                                  : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == '\\') return false;
    i += n;
  }
  return true;
}

bool ComponentsAllowed(std::string_view s) {
  if (s.empty() || s.size() > kPathBytesMax) return false;
  size_t depth = 0, start = 0;
  for (;;) {
    size_t slash = s.find('/', start);
    std::string_view c =
        s.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (c.empty() || c == "." || c == ".." || c.size() > kPathComponentBytesMax)
      return false;
    if (++depth > kPathDepthMax) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

void CheckPath(std::string_view path) {
  absl::Status status = ferry::files::ValidateRelativePath(path);
  const bool valid = status.ok();
  Check(valid || absl::IsInvalidArgument(status));
  Check(valid == (ComponentsAllowed(path) && CharactersAllowed(path)));
  if (valid) {
    Check(path.find('\0') == std::string_view::npos);
    Check(path.find('\\') == std::string_view::npos);
    Check(path.front() != '/' && path.back() != '/');
    Check(path.find("//") == std::string_view::npos);
  }

  // An error message is printable ASCII and bounded.
  for (char c : status.message()) Check(c >= 0x20 && c < 0x7F);
  Check(status.message().size() <= 1200);

  std::string escaped = ferry::files::EscapePath(path);
  for (char c : escaped) Check(c >= 0x20 && c < 0x7F);
  Check(escaped.size() <= 4 * 256 + 3);

  std::string key = ferry::files::CaseFoldKey(path);
  Check(key.size() == path.size());
  Check(ferry::files::CaseFoldKey(key) == key);
  for (size_t i = 0; i < path.size(); ++i) Check((path[i] == '/') == (key[i] == '/'));
  Check(ferry::files::ValidateRelativePath(key).ok() == valid);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckPath(input);
  std::vector<std::string> paths;
  size_t start = 0;
  for (size_t i = 0; i <= input.size() && paths.size() < 64; ++i) {
    if (i == input.size() || input[i] == '\n') {
      paths.emplace_back(input.substr(start, i - start));
      start = i + 1;
    }
  }
  if (paths.size() < 2) return 0;
  for (const std::string& p : paths) CheckPath(p);
  absl::Status collisions = ferry::files::CheckNoCaseCollisions(paths);
  Check(collisions.ok() || absl::IsFailedPrecondition(collisions));
  // Two paths whose keys are equal but that differ collide.
  for (size_t i = 0; i + 1 < paths.size(); ++i) {
    if (paths[i] != paths[i + 1] &&
        ferry::files::CaseFoldKey(paths[i]) == ferry::files::CaseFoldKey(paths[i + 1])) {
      Check(!collisions.ok());
    }
  }
  return 0;
}
