// Ignore rules for the files connector: the `.ferryignore` file at the root of a synced
// folder, in gitignore syntax (`man gitignore`, section PATTERN FORMAT), plus ferry's
// built-in rules.
//
// Semantics follow git (dir.c + wildmatch.c) with these documented choices:
//   * Matching is case-sensitive and byte-wise (no core.ignorecase, no locale).
//   * A UTF-8 byte order mark at the start of the text is skipped and a '\r' before
//     each line end is dropped, as git does.
//   * A pattern with an unterminated '[...]' class, an unknown '[:name:]' class or a
//     trailing lone '\' is kept but never matches anything (git's wildmatch aborts on
//     these); it is not a parse error.
//   * '**' that is not a whole path component ("a**b", "foo**/bar") is a plain '*', as
//     the gitignore manual says. (git itself treats "foo**/bar" like "foo/**/bar", an
//     artefact of its literal-prefix optimisation; ferry does not copy that.)
//   * Rules from BuiltIn() that protect ferry's own files are "sticky": once one
//     matches, no later '!' rule can re-include the path. See BuiltIn().
#ifndef FERRY_CONNECTORS_FILES_IGNORE_H_
#define FERRY_CONNECTORS_FILES_IGNORE_H_

#include <cstddef>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ferry::files {
namespace ignore_internal {
struct Rule;  // defined in ignore.cc
}  // namespace ignore_internal

// An ordered list of gitignore rules. Immutable once built; cheap enough to copy.
// Thread-compatible: const methods may be called concurrently.
class IgnoreRules {
 public:
  // Limits enforced by Parse(). Comment and blank lines do not count as rules.
  static constexpr size_t kMaxRules = 10000;
  // Bytes in one line, not counting its "\n" or "\r\n" terminator.
  static constexpr size_t kMaxLineBytes = 4096;

  // No rules: matches nothing.
  IgnoreRules();
  IgnoreRules(const IgnoreRules&);
  IgnoreRules(IgnoreRules&&) noexcept;
  IgnoreRules& operator=(const IgnoreRules&);
  IgnoreRules& operator=(IgnoreRules&&) noexcept;
  ~IgnoreRules();

  // Parses the text of a .ferryignore: blank lines, '#' comments (only in column 0),
  // '\#' and '\!' escapes, trailing spaces trimmed unless escaped with '\', '!'
  // negation, leading '/' anchoring, a '/' in the middle also anchors, trailing '/' =
  // directories only, '*', '?', '[...]' classes (ranges, '!' or '^' negation,
  // '[:alpha:]'-style names), and '**' in leading ("**/foo"), trailing ("foo/**") and
  // middle ("a/**/b") positions. Leading spaces are part of the pattern, as in git.
  // Returns INVALID_ARGUMENT, naming the line, for more than kMaxRules rules or a line
  // longer than kMaxLineBytes. Callers should also cap the size of the file they read.
  static absl::StatusOr<IgnoreRules> Parse(std::string_view text);

  // Rules that always apply before the user's. Deliberately conservative: only files
  // that are machine-local or ferry's own, never plausible user data.
  //   Sticky (a user '!' rule cannot re-include them; syncing them would corrupt sync):
  //     .ferry-tmp-*   ferry's temporary files, at any depth
  //     .ferry/        ferry's shadow state directory (also a nested root's)
  //   Ordinary (a user rule such as "!.DS_Store" re-includes them):
  //     .*.swp .*.swo  vim swap files (another machine's swap file confuses vim)
  //     .#*            emacs lock files (symlinks naming user@host.pid)
  //     #*#            emacs auto-save files
  //     .DS_Store      macOS Finder metadata
  //     Thumbs.db      Windows thumbnail cache
  // Not built in, because a user may well want them synced: "*~" backup files (they
  // are a previous version of the user's data) and "desktop.ini" (Windows folder
  // customisation). Users can add either to their .ferryignore.
  static IgnoreRules BuiltIn();

  // All rules of `first` followed by all rules of `second` (so `second` wins ties).
  // Used as Combine(BuiltIn(), user_rules). Not subject to kMaxRules.
  static IgnoreRules Combine(const IgnoreRules& first, const IgnoreRules& second);

  // Whether `path` is ignored. `path` is relative to the synced root, '/'-separated,
  // with no leading or trailing '/'; `is_dir` says whether it names a directory. The
  // last matching rule wins, as in git, and a path inside an ignored directory is
  // ignored whatever later rules say (git: "It is not possible to re-include a file if
  // a parent directory of that file is excluded"): every ancestor is matched as a
  // directory too. Cost: O(rules * pattern length * path length) at worst, done in
  // one pass over the path per rule; no recursion or backtracking.
  bool Matches(std::string_view path, bool is_dir) const;

  // Matches() without the ancestors: whether the rules exclude `path` by its own
  // level. Matches(p, d) == Matches(parent of p, true) || MatchesOwnLevel(p, d), so a
  // walk that remembers which directories were ignored pays O(rules) per entry, not
  // O(rules * depth).
  bool MatchesOwnLevel(std::string_view path, bool is_dir) const;

  // Number of rules (for tests and diagnostics).
  size_t size() const;

 private:
  using Rule = ignore_internal::Rule;

  static IgnoreRules ParseTrusted(std::string_view text, bool sticky);
  static absl::StatusOr<IgnoreRules> ParseImpl(std::string_view text, bool sticky);

  std::vector<Rule> rules_;
};

}  // namespace ferry::files

#endif  // FERRY_CONNECTORS_FILES_IGNORE_H_
