#include "src/connectors/files/ignore.h"

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "src/core/strings.h"

namespace ferry::files {
namespace {

constexpr size_t kNpos = std::string_view::npos;

// Always applied, and never re-included by a later '!' rule.
constexpr std::string_view kStickyRules =
    ".ferry-tmp-*\n"
    ".ferry/\n";

// Always applied first; user rules may override them.
constexpr std::string_view kDefaultRules =
    ".*.swp\n"
    ".*.swo\n"
    ".#*\n"
    "\\#*#\n"
    ".DS_Store\n"
    "Thumbs.db\n";

using ByteSet = std::bitset<256>;

// One element of a compiled glob. With gitignore's WM_PATHNAME semantics only the
// '**' forms can match '/'.
enum class TokenKind : uint8_t {
  kLiteral,   // one byte
  kAnyByte,   // '?': any byte but '/'
  kClass,     // '[...]': a byte of the class ('/' never is)
  kStar,      // '*': any run of bytes without '/'
  kAnyDirs,   // "**/" as a whole component: "" or any run ending in '/'
  kAnything,  // trailing "**" as a whole component: any run at all, '/' included
};

struct Token {
  TokenKind kind;
  unsigned char byte = 0;    // kLiteral
  uint32_t class_index = 0;  // kClass: index into Rule::classes
};

}  // namespace

namespace ignore_internal {

struct Rule {
  std::vector<Token> tokens;  // empty when the pattern has no wildcards
  std::vector<ByteSet> classes;
  std::string literal;  // the unescaped pattern when it has no wildcards
  bool has_wildcards = false;
  bool never_matches = false;  // malformed glob: git's wildmatch aborts
  bool negated = false;
  bool dir_only = false;
  bool basename_only = false;  // no '/' in the pattern: matches the last component
  bool sticky = false;
};

}  // namespace ignore_internal

namespace {

using ignore_internal::Rule;

// Drops unescaped trailing spaces, as git's trim_trailing_spaces() does.
std::string_view TrimTrailingSpaces(std::string_view line) {
  std::optional<size_t> first_trailing_space;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == ' ') {
      if (!first_trailing_space) first_trailing_space = i;
      continue;
    }
    if (line[i] == '\\' && ++i == line.size()) return line;
    first_trailing_space.reset();
  }
  return first_trailing_space ? line.substr(0, *first_trailing_space) : line;
}

// ---- Character classes ----------------------------------------------------------

bool IsUpper(int c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(int c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(int c) { return c >= '0' && c <= '9'; }
bool IsAlpha(int c) { return IsUpper(c) || IsLower(c); }
bool IsAlnum(int c) { return IsAlpha(c) || IsDigit(c); }
bool IsGraph(int c) { return c > ' ' && c < 0x7f; }

// Adds the bytes of the POSIX class `name` ("alpha", ...); false if unknown.
bool AddNamedClass(std::string_view name, ByteSet& set) {
  bool (*test)(int) = nullptr;
  if (name == "alnum") test = IsAlnum;
  if (name == "alpha") test = IsAlpha;
  if (name == "blank") test = [](int c) { return c == ' ' || c == '\t'; };
  if (name == "cntrl") test = [](int c) { return c < ' ' || c == 0x7f; };
  if (name == "digit") test = IsDigit;
  if (name == "graph") test = IsGraph;
  if (name == "lower") test = IsLower;
  if (name == "print") test = [](int c) { return c == ' ' || IsGraph(c); };
  if (name == "punct") test = [](int c) { return IsGraph(c) && !IsAlnum(c); };
  if (name == "space") test = [](int c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  if (name == "upper") test = IsUpper;
  if (name == "xdigit") {
    test = [](int c) {
      return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    };
  }
  if (test == nullptr) return false;
  for (int c = 0; c < 128; ++c) {
    if (test(c)) set.set(c);
  }
  return true;
}

// Compiles a class body, mirroring wildmatch.c: a ']' right after '[' (or after the
// negation) is literal, '\' escapes, "a-z" is a range unless '-' is first or last,
// "[:name:]" is a POSIX class and "[:" without ":]" is a literal '['.
class ClassCompiler {
 public:
  ClassCompiler(std::string_view pattern, size_t open) : p_(pattern), i_(open + 1) {}

  // Returns the index just past the closing ']', or nullopt if the class is malformed.
  std::optional<size_t> Compile(ByteSet& set) {
    bool negated = false;
    if (i_ < p_.size() && (p_[i_] == '!' || p_[i_] == '^')) {
      negated = true;
      ++i_;
    }
    for (bool first = true;; first = false, ++i_) {
      if (i_ >= p_.size()) return std::nullopt;
      if (p_[i_] == ']' && !first) break;
      if (!CompileItem(set)) return std::nullopt;
    }
    if (negated) set.flip();
    set.reset('/');
    return i_ + 1;
  }

 private:
  unsigned char At(size_t i) const { return static_cast<unsigned char>(p_[i]); }

  // Compiles the item at i_, leaving i_ on its last byte. False if malformed.
  bool CompileItem(ByteSet& set) {
    unsigned char c = At(i_);
    if (c == '\\') {
      if (++i_ >= p_.size()) return false;
      return AddByte(At(i_), set);
    }
    if (c == '-' && prev_ && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
      return AddRange(set);
    }
    if (c == '[' && i_ + 1 < p_.size() && p_[i_ + 1] == ':') return AddNamed(set);
    return AddByte(c, set);
  }

  bool AddByte(unsigned char c, ByteSet& set) {
    set.set(c);
    prev_ = c;
    return true;
  }

  bool AddRange(ByteSet& set) {
    ++i_;
    if (p_[i_] == '\\' && ++i_ >= p_.size()) return false;
    for (int c = *prev_; c <= At(i_); ++c) set.set(c);
    prev_.reset();
    return true;
  }

  bool AddNamed(ByteSet& set) {
    size_t name_start = i_ + 2;
    size_t close = p_.find(']', name_start);
    if (close == kNpos) return false;
    if (close == name_start || p_[close - 1] != ':') return AddByte('[', set);
    prev_.reset();
    i_ = close;
    return AddNamedClass(p_.substr(name_start, close - 1 - name_start), set);
  }

  std::string_view p_;
  size_t i_;
  std::optional<unsigned char> prev_;  // the previous single byte, for ranges
};

// ---- Pattern compilation ----------------------------------------------------------

void AddToken(Rule& rule, TokenKind kind) {
  rule.tokens.push_back(Token{kind});
  rule.has_wildcards = true;
}

void AddLiteral(Rule& rule, char c) {
  rule.tokens.push_back(Token{TokenKind::kLiteral, static_cast<unsigned char>(c)});
  rule.literal.push_back(c);
}

// Compiles the run of '*' at `i`; returns the index after what it consumed. "**" is
// special only as a whole component: after the start or a '/', and before the end or a
// '/' (which it then absorbs). Any other run acts as one '*'.
size_t CompileStars(std::string_view p, size_t i, Rule& rule) {
  size_t start = i;
  while (i < p.size() && p[i] == '*') ++i;
  bool whole = i - start >= 2 && (start == 0 || p[start - 1] == '/');
  if (whole && i == p.size()) {
    AddToken(rule, TokenKind::kAnything);
    return i;
  }
  if (whole && p[i] == '/') {
    AddToken(rule, TokenKind::kAnyDirs);
    return i + 1;
  }
  if (whole && p.substr(i, 2) == "\\/") {
    // git quirk: "**\/" may not match zero directories, so it is "any run, then '/'".
    AddToken(rule, TokenKind::kAnything);
    AddLiteral(rule, '/');
    return i + 2;
  }
  AddToken(rule, TokenKind::kStar);
  return i;
}

// Compiles the '[' at `i`; returns the index after the class, or nullopt if malformed.
std::optional<size_t> CompileClass(std::string_view p, size_t i, Rule& rule) {
  ByteSet set;
  std::optional<size_t> end = ClassCompiler(p, i).Compile(set);
  if (!end) return std::nullopt;
  rule.tokens.push_back(
      Token{TokenKind::kClass, 0, static_cast<uint32_t>(rule.classes.size())});
  rule.classes.push_back(set);
  rule.has_wildcards = true;
  return end;
}

// Compiles the glob `p` (negation, anchoring '/' and trailing '/' already removed).
void CompileGlob(std::string_view p, Rule& rule) {
  size_t i = 0;
  while (i < p.size() && !rule.never_matches) {
    switch (p[i]) {
      case '\\':
        if (i + 1 == p.size()) rule.never_matches = true;  // wildmatch: no match
        if (i + 1 < p.size()) AddLiteral(rule, p[i + 1]);
        i += 2;
        break;
      case '?':
        AddToken(rule, TokenKind::kAnyByte);
        ++i;
        break;
      case '[': {
        std::optional<size_t> end = CompileClass(p, i, rule);
        rule.never_matches = !end;
        i = end.value_or(p.size());
        break;
      }
      case '*':
        i = CompileStars(p, i, rule);
        break;
      default:
        AddLiteral(rule, p[i++]);
    }
  }
  if (!rule.has_wildcards || rule.never_matches) rule.tokens.clear();
}

// Compiles one pattern line (already trimmed, not blank, not a comment). Returns
// nullopt for patterns that can never match because they are empty ("!", "/").
std::optional<Rule> CompileRule(std::string_view line, bool sticky) {
  Rule rule;
  rule.sticky = sticky;
  if (line.front() == '!') {
    rule.negated = true;
    line.remove_prefix(1);
  }
  if (!line.empty() && line.back() == '/') {
    rule.dir_only = true;
    line.remove_suffix(1);
  }
  rule.basename_only = line.find('/') == kNpos;
  if (!rule.basename_only && line.front() == '/') line.remove_prefix(1);
  if (line.empty()) return std::nullopt;
  CompileGlob(line, rule);
  return rule;
}

// ---- Matching ----------------------------------------------------------------------

// NFA state flags. A "**/" token may be skipped only when it was just entered, not
// after it has swallowed bytes that did not end in '/'.
constexpr char kEntered = 1;
constexpr char kLooped = 2;

// Reusable buffers for one Matches() call.
struct Scratch {
  std::vector<char> current;
  std::vector<char> next;
  std::vector<char> matched;  // per level: whether the rule matches that level
  std::vector<char> decided;  // per level: whether a later rule already decided it
};

bool AnyActive(const std::vector<char>& flags) {
  return std::any_of(flags.begin(), flags.end(), [](char f) { return f != 0; });
}

// Follows the empty-match edges of `states` (only ever to the next token).
void Close(const std::vector<Token>& tokens, std::vector<char>& states) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    TokenKind kind = tokens[i].kind;
    bool skippable = kind == TokenKind::kAnyDirs
                         ? (states[i] & kEntered) != 0
                         : states[i] != 0 &&
                               (kind == TokenKind::kStar || kind == TokenKind::kAnything);
    if (skippable) states[i + 1] |= kEntered;
  }
}

// Advances state `i` over byte `c` into `next`.
void Step(const Rule& rule, size_t i, unsigned char c, std::vector<char>& next) {
  const Token& token = rule.tokens[i];
  bool advance = false;
  switch (token.kind) {
    case TokenKind::kLiteral:
      advance = c == token.byte;
      break;
    case TokenKind::kAnyByte:
      advance = c != '/';
      break;
    case TokenKind::kClass:
      advance = rule.classes[token.class_index].test(c);
      break;
    case TokenKind::kStar:
      if (c != '/') next[i] |= kEntered;
      break;
    case TokenKind::kAnyDirs:
      next[i] |= kLooped;
      advance = c == '/';
      break;
    case TokenKind::kAnything:
      next[i] |= kEntered;
      break;
  }
  if (advance) next[i + 1] |= kEntered;
}

// The levels of a path "a/b/c": "a", "a/b" (directories) and "a/b/c" itself. A path
// is ignored if any level is: a rule matching "a/b" with an ancestor is exactly the
// glob accepting the path's prefix up to a '/'.
struct PathLevels {
  std::string_view path;
  std::vector<size_t> ends;  // level k is path.substr(0, ends[k])
  bool last_is_dir;

  size_t size() const { return ends.size(); }
  std::string_view Prefix(size_t k) const { return path.substr(0, ends[k]); }
  std::string_view Component(size_t k) const {
    size_t start = k == 0 ? 0 : ends[k - 1] + 1;
    return path.substr(start, ends[k] - start);
  }
};

PathLevels SplitLevels(std::string_view path, bool is_dir) {
  PathLevels levels{path, {}, is_dir};
  for (size_t slash = path.find('/'); slash != kNpos; slash = path.find('/', slash + 1)) {
    levels.ends.push_back(slash);
  }
  levels.ends.push_back(path.size());
  return levels;
}

// Simulates the glob as an NFA over `text`: O(tokens * bytes) time, no recursion.
bool GlobMatch(const Rule& rule, std::string_view text, Scratch& scratch) {
  const size_t n = rule.tokens.size();
  std::vector<char>& current = scratch.current;
  std::vector<char>& next = scratch.next;
  current.assign(n + 1, 0);
  current[0] = kEntered;
  Close(rule.tokens, current);
  for (char ch : text) {
    next.assign(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      if (current[i]) Step(rule, i, static_cast<unsigned char>(ch), next);
    }
    if (!AnyActive(next)) return false;
    Close(rule.tokens, next);
    current.swap(next);
  }
  return current[n] != 0;
}

bool TextMatches(const Rule& rule, std::string_view text, Scratch& scratch) {
  if (!rule.has_wildcards) return text == rule.literal;
  return GlobMatch(rule, text, scratch);
}

// Runs the NFA once over the whole path, recording in scratch.matched whether the
// glob accepts each level's prefix: O(tokens * bytes) for all levels together.
void GlobMatchPrefixes(const Rule& rule, const PathLevels& levels, Scratch& scratch) {
  const size_t n = rule.tokens.size();
  std::vector<char>& current = scratch.current;
  std::vector<char>& next = scratch.next;
  current.assign(n + 1, 0);
  current[0] = kEntered;
  Close(rule.tokens, current);
  for (size_t pos = 0, level = 0;; ++pos) {
    if (pos == levels.ends[level]) {
      scratch.matched[level] = current[n] != 0;
      if (++level == levels.size()) return;
    }
    next.assign(n + 1, 0);
    for (size_t i = 0; i < n; ++i) {
      if (current[i]) Step(rule, i, static_cast<unsigned char>(levels.path[pos]), next);
    }
    if (!AnyActive(next)) return;
    Close(rule.tokens, next);
    current.swap(next);
  }
}

// Sets scratch.matched[k] to whether `rule` matches level k of `levels`.
void MatchLevels(const Rule& rule, const PathLevels& levels, Scratch& scratch) {
  scratch.matched.assign(levels.size(), 0);
  if (rule.never_matches) return;
  if (rule.basename_only || !rule.has_wildcards) {
    for (size_t k = 0; k < levels.size(); ++k) {
      std::string_view text = rule.basename_only ? levels.Component(k) : levels.Prefix(k);
      scratch.matched[k] = TextMatches(rule, text, scratch);
    }
  } else {
    GlobMatchPrefixes(rule, levels, scratch);
  }
  if (rule.dir_only && !levels.last_is_dir) scratch.matched.back() = 0;
}

bool AnyLevelMatches(const Rule& rule, const PathLevels& levels, Scratch& scratch) {
  MatchLevels(rule, levels, scratch);
  return AnyActive(scratch.matched);
}

// Splits off the first line of `text` (without its "\n" or "\r\n").
std::string_view NextLine(std::string_view& text) {
  size_t newline = text.find('\n');
  std::string_view line = text.substr(0, newline);
  text.remove_prefix(newline == kNpos ? text.size() : newline + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

IgnoreRules::IgnoreRules() = default;
IgnoreRules::IgnoreRules(const IgnoreRules&) = default;
IgnoreRules::IgnoreRules(IgnoreRules&&) noexcept = default;
IgnoreRules& IgnoreRules::operator=(const IgnoreRules&) = default;
IgnoreRules& IgnoreRules::operator=(IgnoreRules&&) noexcept = default;
IgnoreRules::~IgnoreRules() = default;

size_t IgnoreRules::size() const { return rules_.size(); }

absl::StatusOr<IgnoreRules> IgnoreRules::Parse(std::string_view text) {
  return ParseImpl(text, /*sticky=*/false);
}

absl::StatusOr<IgnoreRules> IgnoreRules::ParseImpl(std::string_view text, bool sticky) {
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  IgnoreRules result;
  size_t rule_count = 0;
  for (size_t line_number = 1; !text.empty(); ++line_number) {
    std::string_view line = NextLine(text);
    if (line.size() > kMaxLineBytes) {
      return absl::InvalidArgumentError(StrCat(
          ".ferryignore line ", line_number, ": longer than ", kMaxLineBytes, " bytes"));
    }
    if (line.empty() || line.front() == '#') continue;
    line = TrimTrailingSpaces(line);
    if (line.empty()) continue;
    if (++rule_count > kMaxRules) {
      return absl::InvalidArgumentError(
          StrCat(".ferryignore line ", line_number, ": more than ", kMaxRules, " rules"));
    }
    std::optional<Rule> rule = CompileRule(line, sticky);
    if (rule) result.rules_.push_back(*std::move(rule));
  }
  return result;
}

IgnoreRules IgnoreRules::ParseTrusted(std::string_view text, bool sticky) {
  absl::StatusOr<IgnoreRules> rules = ParseImpl(text, sticky);
  return rules.ok() ? *std::move(rules) : IgnoreRules();
}

IgnoreRules IgnoreRules::BuiltIn() {
  return Combine(ParseTrusted(kStickyRules, /*sticky=*/true),
                 ParseTrusted(kDefaultRules, /*sticky=*/false));
}

IgnoreRules IgnoreRules::Combine(const IgnoreRules& first, const IgnoreRules& second) {
  IgnoreRules result = first;
  result.rules_.insert(result.rules_.end(), second.rules_.begin(), second.rules_.end());
  return result;
}

bool IgnoreRules::Matches(std::string_view path, bool is_dir) const {
  if (path.empty() || rules_.empty()) return false;
  const PathLevels levels = SplitLevels(path, is_dir);
  Scratch scratch;
  for (const Rule& rule : rules_) {
    if (rule.sticky && AnyLevelMatches(rule, levels, scratch)) return true;
  }
  // The path is ignored if the last rule matching any level (an ancestor directory or
  // the path itself) excludes it. Walk the rules backwards, settling each level once.
  scratch.decided.assign(levels.size(), 0);
  size_t undecided = levels.size();
  for (size_t i = rules_.size(); i-- > 0 && undecided > 0;) {
    if (rules_[i].sticky) continue;  // handled above: matched no level
    MatchLevels(rules_[i], levels, scratch);
    for (size_t k = 0; k < levels.size(); ++k) {
      if (!scratch.matched[k] || scratch.decided[k]) continue;
      if (!rules_[i].negated) return true;
      scratch.decided[k] = 1;
      --undecided;
    }
  }
  return false;
}

bool IgnoreRules::MatchesOwnLevel(std::string_view path, bool is_dir) const {
  if (path.empty() || rules_.empty()) return false;
  Scratch scratch;
  const size_t slash = path.rfind('/');
  const std::string_view base = slash == kNpos ? path : path.substr(slash + 1);
  auto matches = [&](const Rule& rule) {
    if (rule.never_matches || (rule.dir_only && !is_dir)) return false;
    return TextMatches(rule, rule.basename_only ? base : path, scratch);
  };
  for (const Rule& rule : rules_) {
    if (rule.sticky && matches(rule)) return true;
  }
  for (size_t i = rules_.size(); i-- > 0;) {
    if (!rules_[i].sticky && matches(rules_[i])) return !rules_[i].negated;
  }
  return false;
}

}  // namespace ferry::files
