#include "src/connectors/files/path_rules.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "src/core/strings.h"

namespace ferry::files {
namespace {

constexpr size_t kEscapeBytesMax = 256;

// One decoded UTF-8 sequence: its code point and length in bytes.
struct CodePoint {
  uint32_t value;
  size_t bytes;
};

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Decodes the shortest-form UTF-8 sequence at the start of `s` (not empty); nullopt if
// it is malformed, overlong, a surrogate or above U+10FFFF.
std::optional<CodePoint> DecodeUtf8(std::string_view s) {
  assert(!s.empty());
  const auto lead = static_cast<unsigned char>(s[0]);
  if (lead < 0x80) return CodePoint{lead, 1};
  size_t bytes;
  uint32_t value;
  uint32_t min;
  if (lead >= 0xC2 && lead <= 0xDF) {
    bytes = 2, value = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    bytes = 3, value = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    bytes = 4, value = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;  // a continuation byte, C0/C1 (overlong) or F5-FF
  }
  if (s.size() < bytes) return std::nullopt;
  for (size_t i = 1; i < bytes; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!IsContinuation(c)) return std::nullopt;
    value = (value << 6) | (c & 0x3F);
  }
  if (value < min || value > 0x10FFFF) return std::nullopt;
  if (value >= 0xD800 && value <= 0xDFFF) return std::nullopt;
  return CodePoint{value, bytes};
}

bool IsControl(uint32_t code_point) {
  return code_point < 0x20 || (code_point >= 0x7F && code_point <= 0x9F);
}

absl::Status Invalid(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(
      StrCat("invalid path \"", EscapePath(path), "\": ", problem));
}

absl::Status ValidateComponent(std::string_view path, std::string_view component) {
  if (component.empty()) {
    return Invalid(path, "empty component (leading, trailing or doubled '/')");
  }
  if (component == "." || component == "..") {
    return Invalid(path, StrCat("component \"", component, "\" is not allowed"));
  }
  if (component.size() > kPathComponentBytesMax) {
    return Invalid(
        path, StrCat("a component is longer than ", kPathComponentBytesMax, " bytes"));
  }
  return absl::OkStatus();
}

// Checks every character of `path`: UTF-8, no control characters, no '\\'.
absl::Status ValidateCharacters(std::string_view path) {
  size_t at = 0;
  while (at < path.size()) {
    std::optional<CodePoint> c = DecodeUtf8(path.substr(at));
    if (!c.has_value()) {
      return Invalid(path, StrCat("invalid UTF-8 at byte ", at));
    }
    if (c->value == 0) return Invalid(path, StrCat("NUL at byte ", at));
    if (IsControl(c->value)) {
      return Invalid(path, StrCat("control character at byte ", at));
    }
    if (c->value == '\\') return Invalid(path, StrCat("'\\' at byte ", at));
    at += c->bytes;
  }
  return absl::OkStatus();
}

// Lower-case partner of `c` when it is an upper-case letter of a pair (upper, upper+1)
// that starts at an even (`upper_even`) or odd code point within [first, last].
std::optional<uint32_t> FoldPair(uint32_t c, uint32_t first, uint32_t last,
                                 bool upper_even) {
  if (c < first || c > last) return std::nullopt;
  if ((c % 2 == 0) != upper_even) return std::nullopt;
  return c + 1;
}

uint32_t FoldLatin(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 0x20;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  for (auto [first, last, even] :
       {std::tuple{0x100u, 0x12Fu, true}, std::tuple{0x132u, 0x137u, true},
        std::tuple{0x139u, 0x148u, false}, std::tuple{0x14Au, 0x177u, true},
        std::tuple{0x179u, 0x17Eu, false}}) {
    if (auto folded = FoldPair(c, first, last, even)) return *folded;
  }
  return c;
}

uint32_t FoldGreek(uint32_t c) {
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c >= 0x38E && c <= 0x38F) return c + 0x3F;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;
  if (c == 0x3C2) return 0x3C3;
  return c;
}

uint32_t FoldCyrillic(uint32_t c) {
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c == 0x4C0) return 0x4CF;
  for (auto [first, last, even] :
       {std::tuple{0x460u, 0x481u, true}, std::tuple{0x48Au, 0x4BFu, true},
        std::tuple{0x4C1u, 0x4CEu, false}, std::tuple{0x4D0u, 0x52Fu, true}}) {
    if (auto folded = FoldPair(c, first, last, even)) return *folded;
  }
  return c;
}

// Every folded code point below U+0800 stays below U+0800 and above U+007F (or both
// are ASCII), so folding never changes the UTF-8 length.
uint32_t Fold(uint32_t c) {
  if (c < 0x386) return FoldLatin(c);
  if (c < 0x400) return FoldGreek(c);
  if (c < 0x530) return FoldCyrillic(c);
  return c;
}

void AppendTwoByteUtf8(std::string& out, uint32_t c) {
  assert(c >= 0x80 && c < 0x800);
  out.push_back(static_cast<char>(0xC0 | (c >> 6)));
  out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
}

// A node of the component trie CheckNoCaseCollisions builds: (parent node, folded
// component) -> the first spelling seen and the path it came from.
struct Spelling {
  size_t node;
  std::string_view component;
  size_t path_index;
};

}  // namespace

absl::Status ValidateRelativePath(std::string_view path) {
  if (path.empty()) return Invalid(path, "empty");
  if (path.size() > kPathBytesMax) {
    return Invalid(path, StrCat("longer than ", kPathBytesMax, " bytes"));
  }
  size_t depth = 0;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view component = path.substr(start, slash - start);
    absl::Status status = ValidateComponent(path, component);
    if (!status.ok()) return status;
    if (++depth > kPathDepthMax) {
      return Invalid(path, StrCat("more than ", kPathDepthMax, " components"));
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return ValidateCharacters(path);
}

std::string EscapePath(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  std::string_view shown = text.substr(0, kEscapeBytesMax);
  for (char ch : shown) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"') {
      out.push_back(ch);
    } else {
      out.append({'\\', 'x', kHex[c >> 4], kHex[c & 0xF]});
    }
  }
  if (text.size() > shown.size()) out.append("...");
  return out;
}

std::string CaseFoldKey(std::string_view path) {
  std::string key;
  key.reserve(path.size());
  size_t at = 0;
  while (at < path.size()) {
    std::optional<CodePoint> c = DecodeUtf8(path.substr(at));
    if (!c.has_value() || c->bytes > 2) {
      size_t bytes = c.has_value() ? c->bytes : 1;
      key.append(path.substr(at, bytes));
      at += bytes;
      continue;
    }
    uint32_t folded = Fold(c->value);
    if (folded < 0x80) {
      key.push_back(static_cast<char>(folded));
    } else {
      AppendTwoByteUtf8(key, folded);
    }
    at += c->bytes;
  }
  assert(key.size() == path.size());
  return key;
}

absl::Status CheckNoCaseCollisions(const std::vector<std::string>& paths) {
  // Node 0 is the root; every distinct folded prefix gets the next number.
  std::map<std::pair<size_t, std::string>, Spelling> children;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& path = paths[i];
    const std::string key = CaseFoldKey(path);
    size_t node = 0;
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = std::min(path.find('/', start), path.size());
      std::string_view component(path.data() + start, end - start);
      auto [it, inserted] =
          children.try_emplace({node, key.substr(start, end - start)},
                               Spelling{children.size() + 1, component, i});
      if (!inserted && it->second.component != component) {
        return absl::FailedPreconditionError(StrCat(
            "paths \"", EscapePath(paths[it->second.path_index]), "\" and \"",
            EscapePath(path), "\" collide on a case-insensitive file system (\"",
            EscapePath(it->second.component), "\" vs \"", EscapePath(component), "\")"));
      }
      node = it->second.node;
      start = end + 1;
    }
  }
  return absl::OkStatus();
}

}  // namespace ferry::files
