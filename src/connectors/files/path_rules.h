// The rules a relative path must follow before ferry lets it name a file in a synced
// folder, and the case-folding key used to detect names that would collide on a
// case-insensitive file system (macOS, Windows).
//
// Paths arrive from peers over the network. Every function that touches the disk
// validates its paths with ValidateRelativePath first; nothing here touches the disk.
// All functions are thread-safe.
#ifndef FERRY_CONNECTORS_FILES_PATH_RULES_H_
#define FERRY_CONNECTORS_FILES_PATH_RULES_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace ferry::files {

// Bytes of a whole relative path.
inline constexpr size_t kPathBytesMax = 4096;
// Bytes of one component (NAME_MAX on Linux, macOS and Windows).
inline constexpr size_t kPathComponentBytesMax = 255;
// Components of one path; RootDir::Walk descends no deeper, so that every valid path
// can be seen by a scan.
inline constexpr size_t kPathDepthMax = 256;

// OK when `path` may name an item of a synced folder:
//   - not empty, at most kPathBytesMax bytes, at most kPathDepthMax components;
//   - components separated by single '/': no leading, trailing or doubled '/';
//   - no component "." or "..", none longer than kPathComponentBytesMax bytes;
//   - valid UTF-8 (shortest form, no surrogates, at most U+10FFFF);
//   - no NUL, no '\\', no control character: U+0000-U+001F, U+007F and the C1
//     controls U+0080-U+009F.
// Else INVALID_ARGUMENT naming the first problem found and the escaped path.
absl::Status ValidateRelativePath(std::string_view path);

// `text` made safe to print in a message or log: printable ASCII is kept, every other
// byte (and '\\' and '"') becomes \xNN; more than 256 input bytes are cut off with
// "...". Works on any bytes, valid UTF-8 or not.
std::string EscapePath(std::string_view text);

// A key such that two paths that would name the same file on a case-insensitive file
// system map to the same key. The key has the same length as `path` and keeps every
// '/' in place, so a prefix of a path folds to the prefix of its key.
//
// Folded, code point by code point (simple, one-to-one mappings with a fixed offset
// per range; no ICU, no normalization):
//   - ASCII A-Z                                          -> a-z
//   - Latin-1:  U+00C0-U+00DE except U+00D7 (x sign)     -> +0x20
//   - Latin Extended-A: the upper-case member of each pair (U+0100-U+012F, U+0132-
//     U+0137, U+014A-U+0177 even; U+0139-U+0148, U+0179-U+017E odd) -> +1
//   - Greek:    U+0386 -> U+03AC, U+0388-U+038A -> +0x25, U+038C -> U+03CC,
//               U+038E-U+038F -> +0x3F, U+0391-U+03AB (U+03A2 is unassigned) -> +0x20,
//               and final sigma U+03C2 -> U+03C3 (both upper-case to U+03A3)
//   - Cyrillic: U+0400-U+040F -> +0x50, U+0410-U+042F -> +0x20, the upper-case member
//               of each pair in U+0460-U+0481, U+048A-U+04BF, U+04D0-U+052F (even)
//               and U+04C1-U+04CE (odd) -> +1, U+04C0 -> U+04CF
// Not folded: everything else, including U+0130, U+0178 and U+00DF (no fixed-offset
// or one-to-one mapping), and composed vs decomposed forms (macOS would also treat
// "e\u0301" and "\u00e9" as one name). Invalid UTF-8 bytes are copied unchanged.
std::string CaseFoldKey(std::string_view path);

// OK when no two of `paths` would collide on a case-insensitive file system, either
// as whole paths or through a parent directory ("A/x" and "a/y" collide: the
// directories "A" and "a" are one). Identical paths do not collide with each other.
// Else FAILED_PRECONDITION naming the first colliding pair (in input order) and the
// components that collide. Time and memory are linear in the total size of `paths`.
absl::Status CheckNoCaseCollisions(const std::vector<std::string>& paths);

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_PATH_RULES_H_
