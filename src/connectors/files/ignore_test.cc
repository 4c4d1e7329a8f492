#include "src/connectors/files/ignore.h"

#include <gtest/gtest.h>

#include <chrono>
#include <iterator>
#include <ostream>
#include <random>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "src/core/strings.h"

namespace ferry::files {
namespace {

constexpr bool kFile = false;
constexpr bool kDir = true;

IgnoreRules MustParse(std::string_view text) {
  absl::StatusOr<IgnoreRules> rules = IgnoreRules::Parse(text);
  EXPECT_TRUE(rules.ok()) << rules.status();
  return rules.ok() ? *std::move(rules) : IgnoreRules();
}

bool Ignored(std::string_view rules, std::string_view path, bool is_dir = kFile) {
  return MustParse(rules).Matches(path, is_dir);
}

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

// ---- Parsing: blank lines, comments, escapes, whitespace ----------------------------

TEST(IgnoreParseTest, EmptyTextHasNoRules) {
  IgnoreRules rules = MustParse("");
  EXPECT_EQ(rules.size(), 0u);
  EXPECT_FALSE(rules.Matches("anything", kFile));
}

TEST(IgnoreParseTest, DefaultConstructedMatchesNothing) {
  EXPECT_FALSE(IgnoreRules().Matches("a/b", kDir));
}

TEST(IgnoreParseTest, BlankLinesAndCommentsAreNotRules) {
  IgnoreRules rules = MustParse("\n# a comment\n\nfoo\n#bar\n");
  EXPECT_EQ(rules.size(), 1u);
  EXPECT_TRUE(rules.Matches("foo", kFile));
  EXPECT_FALSE(rules.Matches("#bar", kFile));
  EXPECT_FALSE(rules.Matches("bar", kFile));
}

TEST(IgnoreParseTest, WhitespaceOnlyLineIsBlank) {
  IgnoreRules rules = MustParse("   \n \n");
  EXPECT_EQ(rules.size(), 0u);
  EXPECT_FALSE(rules.Matches(" ", kFile));
}

TEST(IgnoreParseTest, HashIsCommentOnlyInFirstColumn) {
  EXPECT_TRUE(Ignored(" #foo", " #foo"));
  EXPECT_FALSE(Ignored(" #foo", "#foo"));
}

TEST(IgnoreParseTest, EscapedHashIsLiteral) {
  EXPECT_TRUE(Ignored("\\#foo", "#foo"));
  EXPECT_TRUE(Ignored("\\#foo", "dir/#foo"));
  EXPECT_FALSE(Ignored("\\#foo", "foo"));
}

TEST(IgnoreParseTest, EscapedBangIsLiteralNotNegation) {
  EXPECT_TRUE(Ignored("\\!important", "!important"));
  EXPECT_FALSE(Ignored("\\!important", "important"));
  EXPECT_FALSE(Ignored("important\n\\!important", "!x"));
  EXPECT_TRUE(Ignored("important\n\\!important", "important"));
}

TEST(IgnoreParseTest, TrailingSpacesAreTrimmed) {
  EXPECT_TRUE(Ignored("foo   ", "foo"));
  EXPECT_FALSE(Ignored("foo   ", "foo "));
}

TEST(IgnoreParseTest, EscapedTrailingSpaceIsKept) {
  EXPECT_TRUE(Ignored("foo\\ ", "foo "));
  EXPECT_FALSE(Ignored("foo\\ ", "foo"));
}

TEST(IgnoreParseTest, SpacesAfterEscapedSpaceAreTrimmed) {
  EXPECT_TRUE(Ignored("foo\\   ", "foo "));
  EXPECT_FALSE(Ignored("foo\\   ", "foo   "));
}

TEST(IgnoreParseTest, InnerAndLeadingSpacesAreSignificant) {
  EXPECT_TRUE(Ignored("my file", "my file"));
  EXPECT_TRUE(Ignored("  lead", "  lead"));
  EXPECT_FALSE(Ignored("  lead", "lead"));
}

TEST(IgnoreParseTest, TrailingTabsAreNotTrimmed) {
  EXPECT_TRUE(Ignored("foo\t", "foo\t"));
  EXPECT_FALSE(Ignored("foo\t", "foo"));
}

TEST(IgnoreParseTest, CrlfLineEndings) {
  IgnoreRules rules = MustParse("foo\r\n!bar.log\r\n*.log\r\nlast\r");
  EXPECT_EQ(rules.size(), 4u);
  EXPECT_TRUE(rules.Matches("foo", kFile));
  EXPECT_TRUE(rules.Matches("bar.log", kFile));
  EXPECT_TRUE(rules.Matches("last", kFile));
  EXPECT_FALSE(rules.Matches("foo\r", kFile));
}

TEST(IgnoreParseTest, ByteOrderMarkIsSkipped) {
  EXPECT_TRUE(
      Ignored("\xEF\xBB\xBF"
              "foo\n",
              "foo"));
  EXPECT_EQ(MustParse("\xEF\xBB\xBF#comment\n").size(), 0u);
}

TEST(IgnoreParseTest, LastLineWithoutNewline) {
  IgnoreRules rules = MustParse("a\nb");
  EXPECT_EQ(rules.size(), 2u);
  EXPECT_TRUE(rules.Matches("b", kFile));
}

TEST(IgnoreParseTest, EmptyPatternsNeverMatch) {
  IgnoreRules rules = MustParse("!\n/\n!/\n");
  EXPECT_EQ(rules.size(), 0u);
  EXPECT_FALSE(rules.Matches("a", kDir));
}

TEST(IgnoreParseTest, BackslashEscapesWildcards) {
  EXPECT_TRUE(Ignored("\\*", "*"));
  EXPECT_FALSE(Ignored("\\*", "x"));
  EXPECT_TRUE(Ignored("what\\?", "what?"));
  EXPECT_FALSE(Ignored("what\\?", "whatx"));
  EXPECT_TRUE(Ignored("\\[ab]", "[ab]"));
  EXPECT_FALSE(Ignored("\\[ab]", "a"));
}

TEST(IgnoreParseTest, BackslashBeforeOrdinaryByteIsDropped) {
  EXPECT_TRUE(Ignored("fo\\o", "foo"));
  EXPECT_TRUE(Ignored("a\\\\b", "a\\b"));
}

TEST(IgnoreParseTest, TrailingLoneBackslashNeverMatches) {
  IgnoreRules rules = MustParse("foo\\");
  EXPECT_EQ(rules.size(), 1u);
  EXPECT_FALSE(rules.Matches("foo", kFile));
  EXPECT_FALSE(rules.Matches("foo\\", kFile));
}

// ---- Literal and basename patterns ---------------------------------------------------

TEST(IgnoreMatchTest, PatternWithoutSlashMatchesAtAnyDepth) {
  EXPECT_TRUE(Ignored("foo", "foo"));
  EXPECT_TRUE(Ignored("foo", "a/foo"));
  EXPECT_TRUE(Ignored("foo", "a/b/foo", kDir));
}

TEST(IgnoreMatchTest, LiteralMatchesWholeComponentOnly) {
  EXPECT_FALSE(Ignored("foo", "foobar"));
  EXPECT_FALSE(Ignored("foo", "afoo"));
  EXPECT_FALSE(Ignored("foo", "fo"));
}

TEST(IgnoreMatchTest, IgnoredDirectoryIgnoresItsContents) {
  EXPECT_TRUE(Ignored("node_modules", "node_modules/x/y.js"));
  EXPECT_TRUE(Ignored("node_modules", "app/node_modules/z", kDir));
  EXPECT_FALSE(Ignored("node_modules", "app/node_modules_x/z"));
}

TEST(IgnoreMatchTest, MatchingIsCaseSensitive) {
  EXPECT_FALSE(Ignored("README", "readme"));
  EXPECT_FALSE(Ignored("*.JPG", "a.jpg"));
  EXPECT_TRUE(Ignored("*.JPG", "a.JPG"));
}

TEST(IgnoreMatchTest, NonAsciiBytes) {
  EXPECT_TRUE(Ignored("caf\xC3\xA9*", "caf\xC3\xA9-menu.txt"));
  EXPECT_TRUE(Ignored("?.txt", "\xC3.txt"));
  EXPECT_FALSE(Ignored("?.txt", "\xC3\xA9.txt"));  // '?' is one byte, as in git
}

TEST(IgnoreMatchTest, EmptyPathNeverMatches) { EXPECT_FALSE(Ignored("*", "", kDir)); }

// ---- Negation ----------------------------------------------------------------------

TEST(IgnoreNegationTest, NegationReincludes) {
  IgnoreRules rules = MustParse("*.log\n!keep.log\n");
  EXPECT_TRUE(rules.Matches("debug.log", kFile));
  EXPECT_FALSE(rules.Matches("keep.log", kFile));
  EXPECT_FALSE(rules.Matches("sub/keep.log", kFile));
}

TEST(IgnoreNegationTest, LaterExclusionOverridesEarlierNegation) {
  IgnoreRules rules = MustParse("!keep.log\n*.log\n");
  EXPECT_TRUE(rules.Matches("keep.log", kFile));
}

TEST(IgnoreNegationTest, LastMatchingRuleWins) {
  IgnoreRules rules = MustParse("a*\n!ab*\nabc*\n!abcd\n");
  EXPECT_TRUE(rules.Matches("ax", kFile));
  EXPECT_FALSE(rules.Matches("abx", kFile));
  EXPECT_TRUE(rules.Matches("abcx", kFile));
  EXPECT_FALSE(rules.Matches("abcd", kFile));
}

TEST(IgnoreNegationTest, NegationWithoutEarlierMatchIsHarmless) {
  IgnoreRules rules = MustParse("!foo\n");
  EXPECT_EQ(rules.size(), 1u);
  EXPECT_FALSE(rules.Matches("foo", kFile));
}

TEST(IgnoreNegationTest, NegatedDirOnlyRuleDoesNotApplyToFiles) {
  IgnoreRules rules = MustParse("foo\n!foo/\n");
  EXPECT_FALSE(rules.Matches("foo", kDir));
  EXPECT_TRUE(rules.Matches("foo", kFile));
}

// ---- Directory-only rules -------------------------------------------------------------

TEST(IgnoreDirOnlyTest, TrailingSlashMatchesOnlyDirectories) {
  EXPECT_TRUE(Ignored("build/", "build", kDir));
  EXPECT_FALSE(Ignored("build/", "build", kFile));
  EXPECT_TRUE(Ignored("build/", "src/build", kDir));
  EXPECT_FALSE(Ignored("build/", "src/build", kFile));
}

TEST(IgnoreDirOnlyTest, ContentsOfMatchedDirectoryAreIgnored) {
  EXPECT_TRUE(Ignored("build/", "build/out.o"));
  EXPECT_TRUE(Ignored("build/", "src/build/deep/out.o"));
}

TEST(IgnoreDirOnlyTest, DirOnlyWithWildcard) {
  EXPECT_TRUE(Ignored("*.cache/", "x.cache", kDir));
  EXPECT_FALSE(Ignored("*.cache/", "x.cache", kFile));
  EXPECT_TRUE(Ignored("*.cache/", "a/x.cache/f"));
}

TEST(IgnoreDirOnlyTest, DirOnlyWithTrailingSpaces) {
  EXPECT_TRUE(Ignored("tmp/  ", "tmp", kDir));
  EXPECT_FALSE(Ignored("tmp/  ", "tmp", kFile));
}

// ---- Anchoring ------------------------------------------------------------------------

TEST(IgnoreAnchorTest, LeadingSlashAnchorsToRoot) {
  EXPECT_TRUE(Ignored("/foo", "foo"));
  EXPECT_FALSE(Ignored("/foo", "a/foo"));
  EXPECT_TRUE(Ignored("/foo", "foo/bar"));
}

TEST(IgnoreAnchorTest, MiddleSlashAnchorsToRoot) {
  EXPECT_TRUE(Ignored("doc/frotz", "doc/frotz"));
  EXPECT_FALSE(Ignored("doc/frotz", "a/doc/frotz"));
  EXPECT_TRUE(Ignored("doc/frotz", "doc/frotz/x.txt"));
}

TEST(IgnoreAnchorTest, AnchoredDirectoryOnly) {
  IgnoreRules rules = MustParse("/build/\n");
  EXPECT_TRUE(rules.Matches("build", kDir));
  EXPECT_FALSE(rules.Matches("build", kFile));
  EXPECT_FALSE(rules.Matches("src/build", kDir));
  EXPECT_TRUE(rules.Matches("build/x", kFile));
}

TEST(IgnoreAnchorTest, StarDoesNotCrossSlashInAnchoredPattern) {
  EXPECT_TRUE(Ignored("doc/*.txt", "doc/a.txt"));
  EXPECT_FALSE(Ignored("doc/*.txt", "doc/sub/a.txt"));
  EXPECT_TRUE(Ignored("/*.c", "main.c"));
  EXPECT_FALSE(Ignored("/*.c", "src/main.c"));
}

TEST(IgnoreAnchorTest, BasenameStarMatchesAtAnyDepth) {
  EXPECT_TRUE(Ignored("*.o", "a/b/c.o"));
  EXPECT_FALSE(Ignored("*.o", "a/b/c.oo"));
}

TEST(IgnoreAnchorTest, EscapedSlashStillAnchors) {
  EXPECT_TRUE(Ignored("a\\/b", "a/b"));
  EXPECT_FALSE(Ignored("a\\/b", "x/a/b"));
}

// ---- '*' and '?' ------------------------------------------------------------------

TEST(IgnoreWildcardTest, StarMatchesEmptyAndAnyRun) {
  EXPECT_TRUE(Ignored("foo*", "foo"));
  EXPECT_TRUE(Ignored("foo*", "foobar"));
  EXPECT_TRUE(Ignored("*", "x"));
  EXPECT_TRUE(Ignored("a*z", "az"));
  EXPECT_TRUE(Ignored("a*z", "a-long-z"));
  EXPECT_FALSE(Ignored("a*z", "a-long-y"));
}

TEST(IgnoreWildcardTest, MultipleStars) {
  EXPECT_TRUE(Ignored("*a*b*", "xaxbx"));
  EXPECT_TRUE(Ignored("*a*b*", "ab"));
  EXPECT_FALSE(Ignored("*a*b*", "ba"));
}

TEST(IgnoreWildcardTest, QuestionMarkMatchesExactlyOneByte) {
  EXPECT_TRUE(Ignored("fil?.txt", "file.txt"));
  EXPECT_FALSE(Ignored("fil?.txt", "fil.txt"));
  EXPECT_FALSE(Ignored("fil?.txt", "filee.txt"));
}

TEST(IgnoreWildcardTest, WildcardsNeverMatchSlash) {
  EXPECT_FALSE(Ignored("x/a?b", "x/a/b"));
  EXPECT_FALSE(Ignored("x/a*b", "x/a/b"));
  EXPECT_FALSE(Ignored("x/a[!c]b", "x/a/b"));
  EXPECT_FALSE(Ignored("x/a[/]b", "x/a/b"));
}

TEST(IgnoreWildcardTest, PathologicalPatternIsFast) {
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += "*a";
  pattern += "*b";
  std::string path(4000, 'a');
  IgnoreRules rules = MustParse(pattern);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(rules.Matches(path, kFile));
  EXPECT_TRUE(rules.Matches(path + "b", kFile));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(IgnoreWildcardTest, PathologicalDoubleStarPatternIsFast) {
  std::string pattern;
  for (int i = 0; i < 100; ++i) pattern += "**/a/";
  pattern += "b";
  std::string path;
  for (int i = 0; i < 500; ++i) path += "a/";
  IgnoreRules rules = MustParse(pattern);
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(rules.Matches(path + "c", kFile));
  EXPECT_TRUE(rules.Matches(path + "b", kFile));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(IgnoreWildcardTest, VeryDeepPathIsFast) {
  std::string path;
  for (int i = 0; i < 2000; ++i) path += "a/";
  path += "z";
  IgnoreRules rules = MustParse("**/a/**/b\n*.x\na/*/c\n**/q/\n!a\n/a/**/a/*z\n");
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(rules.Matches(path, kFile));
  EXPECT_FALSE(rules.Matches(path + "y", kFile));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// ---- Character classes ------------------------------------------------------------

TEST(IgnoreClassTest, ListedBytes) {
  EXPECT_TRUE(Ignored("file[abc]", "fileb"));
  EXPECT_FALSE(Ignored("file[abc]", "filed"));
  EXPECT_FALSE(Ignored("file[abc]", "file"));
}

TEST(IgnoreClassTest, Ranges) {
  IgnoreRules rules = MustParse("v[0-9][a-cx-z]\n");
  EXPECT_TRUE(rules.Matches("v5b", kFile));
  EXPECT_TRUE(rules.Matches("v0y", kFile));
  EXPECT_FALSE(rules.Matches("v5d", kFile));
  EXPECT_FALSE(rules.Matches("vab", kFile));
}

TEST(IgnoreClassTest, ReversedRangeMatchesOnlyItsFirstByte) {
  // As in git's wildmatch, the range start is also taken as a single byte.
  EXPECT_FALSE(Ignored("[z-a]", "m"));
  EXPECT_FALSE(Ignored("[z-a]", "a"));
  EXPECT_TRUE(Ignored("[z-a]", "z"));
}

TEST(IgnoreClassTest, NegationWithBang) {
  EXPECT_TRUE(Ignored("x[!0-9]", "xa"));
  EXPECT_FALSE(Ignored("x[!0-9]", "x5"));
}

TEST(IgnoreClassTest, NegationWithCaret) {
  EXPECT_TRUE(Ignored("x[^0-9]", "xa"));
  EXPECT_FALSE(Ignored("x[^0-9]", "x5"));
}

TEST(IgnoreClassTest, ClosingBracketFirstIsLiteral) {
  EXPECT_TRUE(Ignored("[]a]", "]"));
  EXPECT_TRUE(Ignored("[]a]", "a"));
  EXPECT_TRUE(Ignored("[!]]", "x"));
  EXPECT_FALSE(Ignored("[!]]", "]"));
}

TEST(IgnoreClassTest, DashFirstOrLastIsLiteral) {
  EXPECT_TRUE(Ignored("[-a]", "-"));
  EXPECT_TRUE(Ignored("[a-]", "-"));
  EXPECT_FALSE(Ignored("[a-]", "b"));
}

TEST(IgnoreClassTest, DashAfterRangeIsLiteral) {
  IgnoreRules rules = MustParse("[a-c-e]");
  EXPECT_TRUE(rules.Matches("-", kFile));
  EXPECT_TRUE(rules.Matches("e", kFile));
  EXPECT_FALSE(rules.Matches("d", kFile));
}

TEST(IgnoreClassTest, EscapesInsideClass) {
  EXPECT_TRUE(Ignored("[\\]]", "]"));
  EXPECT_TRUE(Ignored("[\\!a]", "!"));
  EXPECT_TRUE(Ignored("[a\\-z]", "-"));
  EXPECT_FALSE(Ignored("[a\\-z]", "m"));
}

TEST(IgnoreClassTest, PosixNamedClasses) {
  EXPECT_TRUE(Ignored("[[:digit:]]*", "7up"));
  EXPECT_FALSE(Ignored("[[:digit:]]*", "up"));
  EXPECT_TRUE(Ignored("[[:upper:][:digit:]]", "Q"));
  EXPECT_TRUE(Ignored("x[[:space:]]", "x "));
  EXPECT_TRUE(Ignored("[![:alpha:]]", "."));
  EXPECT_FALSE(Ignored("[![:alpha:]]", "k"));
}

TEST(IgnoreClassTest, BracketColonWithoutCloseIsLiteralBracket) {
  IgnoreRules rules = MustParse("[[:x]");
  EXPECT_TRUE(rules.Matches("[", kFile));
  EXPECT_TRUE(rules.Matches(":", kFile));
  EXPECT_TRUE(rules.Matches("x", kFile));
  EXPECT_FALSE(rules.Matches("y", kFile));
}

TEST(IgnoreClassTest, UnterminatedClassNeverMatches) {
  IgnoreRules rules = MustParse("foo[\nbar[abc\n");
  EXPECT_EQ(rules.size(), 2u);
  EXPECT_FALSE(rules.Matches("foo[", kFile));
  EXPECT_FALSE(rules.Matches("bar[abc", kFile));
  EXPECT_FALSE(rules.Matches("bara", kFile));
}

TEST(IgnoreClassTest, UnknownNamedClassNeverMatches) {
  EXPECT_FALSE(Ignored("[[:vowel:]]", "a"));
  EXPECT_FALSE(Ignored("[[:vowel:]]", "v"));
}

// ---- '**' -----------------------------------------------------------------------

TEST(IgnoreDoubleStarTest, LeadingMatchesInAllDirectories) {
  IgnoreRules rules = MustParse("**/foo\n");
  EXPECT_TRUE(rules.Matches("foo", kFile));
  EXPECT_TRUE(rules.Matches("a/foo", kFile));
  EXPECT_TRUE(rules.Matches("a/b/foo", kDir));
  EXPECT_FALSE(rules.Matches("a/xfoo", kFile));
}

TEST(IgnoreDoubleStarTest, LeadingWithPathKeepsPathTogether) {
  IgnoreRules rules = MustParse("**/foo/bar\n");
  EXPECT_TRUE(rules.Matches("foo/bar", kFile));
  EXPECT_TRUE(rules.Matches("x/y/foo/bar", kFile));
  EXPECT_FALSE(rules.Matches("foo/x/bar", kFile));
}

TEST(IgnoreDoubleStarTest, TrailingMatchesEverythingInside) {
  IgnoreRules rules = MustParse("abc/**\n");
  EXPECT_TRUE(rules.Matches("abc/x", kFile));
  EXPECT_TRUE(rules.Matches("abc/x/y", kFile));
  EXPECT_FALSE(rules.Matches("abc", kDir));
  EXPECT_FALSE(rules.Matches("x/abc/y", kFile));
}

TEST(IgnoreDoubleStarTest, TrailingLeavesDirectorySoContentsCanBeReincluded) {
  IgnoreRules rules = MustParse("foo/**\n!foo/keep\n");
  EXPECT_TRUE(rules.Matches("foo/other", kFile));
  EXPECT_FALSE(rules.Matches("foo/keep", kFile));
}

TEST(IgnoreDoubleStarTest, MiddleMatchesZeroOrMoreDirectories) {
  IgnoreRules rules = MustParse("a/**/b\n");
  EXPECT_TRUE(rules.Matches("a/b", kFile));
  EXPECT_TRUE(rules.Matches("a/x/b", kFile));
  EXPECT_TRUE(rules.Matches("a/x/y/b", kFile));
  EXPECT_FALSE(rules.Matches("a/xb", kFile));
  EXPECT_FALSE(rules.Matches("ab", kFile));
  EXPECT_FALSE(rules.Matches("z/a/b", kFile));
}

TEST(IgnoreDoubleStarTest, SeveralDoubleStars) {
  IgnoreRules rules = MustParse("**/x/**/*.tmp\n");
  EXPECT_TRUE(rules.Matches("x/a.tmp", kFile));
  EXPECT_TRUE(rules.Matches("p/x/q/r/a.tmp", kFile));
  EXPECT_FALSE(rules.Matches("p/y/a.tmp", kFile));
}

TEST(IgnoreDoubleStarTest, AloneMatchesEverything) {
  EXPECT_TRUE(Ignored("**", "a"));
  EXPECT_TRUE(Ignored("**", "a/b/c", kDir));
  EXPECT_TRUE(Ignored("/**", "a/b"));
}

TEST(IgnoreDoubleStarTest, MoreThanTwoStarsActLikeTwo) {
  EXPECT_TRUE(Ignored("***/foo", "a/b/foo"));
  EXPECT_TRUE(Ignored("a/***", "a/b/c"));
}

TEST(IgnoreDoubleStarTest, NotAWholeComponentActsLikeOneStar) {
  EXPECT_TRUE(Ignored("a**b", "axxb"));
  EXPECT_FALSE(Ignored("x/a**b", "x/a/b"));
  EXPECT_TRUE(Ignored("foo**/bar", "foox/bar"));
  EXPECT_TRUE(Ignored("foo**/bar", "foo/bar"));
  EXPECT_FALSE(Ignored("foo**/bar", "foo/x/bar"));
  EXPECT_FALSE(Ignored("x/**y", "x/a/y"));
}

TEST(IgnoreDoubleStarTest, EscapedSlashAfterDoubleStarNeedsADirectory) {
  // git quirk kept for parity: "**\\/" is "anything, then '/'", never zero directories.
  IgnoreRules rules = MustParse("a/**\\/b\n");
  EXPECT_FALSE(rules.Matches("a/b", kFile));
  EXPECT_TRUE(rules.Matches("a/x/b", kFile));
  EXPECT_TRUE(rules.Matches("a/x/y/b", kFile));
}

TEST(IgnoreDoubleStarTest, DirOnlyTrailingDoubleStar) {
  IgnoreRules rules = MustParse("a/**/\n");
  EXPECT_TRUE(rules.Matches("a/b", kDir));
  EXPECT_FALSE(rules.Matches("a/b", kFile));
  EXPECT_TRUE(rules.Matches("a/b/c", kFile));
}

// ---- Parent directories ----------------------------------------------------------

TEST(IgnoreParentTest, FileCannotBeReincludedInExcludedDirectory) {
  IgnoreRules rules = MustParse("build/\n!build/keep.txt\n");
  EXPECT_TRUE(rules.Matches("build/keep.txt", kFile));
}

TEST(IgnoreParentTest, DirectoryCannotBeReincludedInExcludedDirectory) {
  IgnoreRules rules = MustParse("/a\n!/a/b/\n!b\n");
  EXPECT_TRUE(rules.Matches("a/b", kDir));
  EXPECT_TRUE(rules.Matches("a/b/c", kFile));
}

TEST(IgnoreParentTest, ReincludeWorksWhenOnlyContentsAreExcluded) {
  IgnoreRules rules = MustParse("build/*\n!build/keep.txt\n");
  EXPECT_FALSE(rules.Matches("build", kDir));
  EXPECT_TRUE(rules.Matches("build/out.o", kFile));
  EXPECT_FALSE(rules.Matches("build/keep.txt", kFile));
}

TEST(IgnoreParentTest, IgnoreEverythingExceptIdiom) {
  IgnoreRules rules = MustParse("*\n!*/\n!*.txt\n");
  EXPECT_FALSE(rules.Matches("a", kDir));
  EXPECT_FALSE(rules.Matches("a/b/notes.txt", kFile));
  EXPECT_TRUE(rules.Matches("a/b/image.png", kFile));
}

TEST(IgnoreParentTest, NestedReincludeIdiomFromManual) {
  IgnoreRules rules = MustParse("/*\n!/foo\n/foo/*\n!/foo/bar\n");
  EXPECT_TRUE(rules.Matches("other", kDir));
  EXPECT_FALSE(rules.Matches("foo", kDir));
  EXPECT_TRUE(rules.Matches("foo/baz", kFile));
  EXPECT_FALSE(rules.Matches("foo/bar", kDir));
  EXPECT_FALSE(rules.Matches("foo/bar/deep.c", kFile));
}

TEST(IgnoreParentTest, AncestorsAreMatchedAsDirectories) {
  EXPECT_TRUE(Ignored("b/", "a/b/c"));
  EXPECT_TRUE(Ignored("/a/b", "a/b/c/d", kDir));
  EXPECT_FALSE(Ignored("c/", "a/b/c"));
}

TEST(IgnoreParentTest, ReincludedAncestorDoesNotHideOtherRules) {
  IgnoreRules rules = MustParse("logs/\n!logs/\n*.log\n");
  EXPECT_FALSE(rules.Matches("logs/readme", kFile));
  EXPECT_TRUE(rules.Matches("logs/x.log", kFile));
}

// ---- Built-ins and Combine --------------------------------------------------------

TEST(IgnoreBuiltInTest, IgnoresFerryTempFilesAnywhere) {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  EXPECT_TRUE(rules.Matches(".ferry-tmp-1234", kFile));
  EXPECT_TRUE(rules.Matches("a/b/.ferry-tmp-x.part", kFile));
  EXPECT_FALSE(rules.Matches("ferry-tmp-1234", kFile));
}

TEST(IgnoreBuiltInTest, IgnoresShadowStateDirectory) {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  EXPECT_TRUE(rules.Matches(".ferry", kDir));
  EXPECT_TRUE(rules.Matches(".ferry/state.db", kFile));
  EXPECT_TRUE(rules.Matches("nested/.ferry/state.db", kFile));
  EXPECT_FALSE(rules.Matches(".ferry", kFile));
  EXPECT_FALSE(rules.Matches(".ferryignore", kFile));
}

TEST(IgnoreBuiltInTest, IgnoresEditorSwapLockAndAutosaveFiles) {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  EXPECT_TRUE(rules.Matches("src/.main.c.swp", kFile));
  EXPECT_TRUE(rules.Matches(".notes.txt.swo", kFile));
  EXPECT_TRUE(rules.Matches("doc/.#draft.org", kFile));
  EXPECT_TRUE(rules.Matches("doc/#draft.org#", kFile));
}

TEST(IgnoreBuiltInTest, IgnoresOsLitter) {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  EXPECT_TRUE(rules.Matches(".DS_Store", kFile));
  EXPECT_TRUE(rules.Matches("photos/2024/Thumbs.db", kFile));
}

TEST(IgnoreBuiltInTest, KeepsPlausibleUserData) {
  IgnoreRules rules = IgnoreRules::BuiltIn();
  for (std::string_view path :
       {"notes.txt", "report.doc~", "desktop.ini", ".gitignore", ".ferryignore", "#notes",
        "notes#", "main.swp", ".swp", "DS_Store", "thumbs.db.bak", "ferry", ".git"}) {
    EXPECT_FALSE(rules.Matches(path, kFile)) << path;
  }
  EXPECT_FALSE(rules.Matches("src", kDir));
}

TEST(IgnoreBuiltInTest, CombinePutsFirstRulesBeforeSecond) {
  IgnoreRules user = MustParse("*.log\n");
  IgnoreRules combined = IgnoreRules::Combine(IgnoreRules::BuiltIn(), user);
  EXPECT_EQ(combined.size(), IgnoreRules::BuiltIn().size() + 1);
  EXPECT_TRUE(combined.Matches("x.log", kFile));
  EXPECT_TRUE(combined.Matches(".DS_Store", kFile));
}

TEST(IgnoreBuiltInTest, UserRulesCanReincludeOrdinaryBuiltIns) {
  IgnoreRules combined =
      IgnoreRules::Combine(IgnoreRules::BuiltIn(), MustParse("!.DS_Store\n!*.swp\n"));
  EXPECT_FALSE(combined.Matches(".DS_Store", kFile));
  EXPECT_FALSE(combined.Matches(".a.swp", kFile));
  EXPECT_TRUE(combined.Matches("Thumbs.db", kFile));
}

TEST(IgnoreBuiltInTest, UserRulesCannotReincludeFerryFiles) {
  IgnoreRules combined = IgnoreRules::Combine(
      IgnoreRules::BuiltIn(), MustParse("!.ferry/\n!.ferry\n!.ferry-tmp-*\n!*\n!*/\n"));
  EXPECT_TRUE(combined.Matches(".ferry", kDir));
  EXPECT_TRUE(combined.Matches(".ferry/state.db", kFile));
  EXPECT_TRUE(combined.Matches(".ferry-tmp-7", kFile));
  EXPECT_FALSE(combined.Matches("ordinary", kFile));
}

TEST(IgnoreBuiltInTest, CombineWithEmptyRules) {
  IgnoreRules user = MustParse("x\n");
  EXPECT_EQ(IgnoreRules::Combine(IgnoreRules(), user).size(), 1u);
  EXPECT_TRUE(IgnoreRules::Combine(user, IgnoreRules()).Matches("x", kFile));
}

// ---- Limits -----------------------------------------------------------------------

TEST(IgnoreLimitsTest, LineAtLimitIsAccepted) {
  std::string line(IgnoreRules::kMaxLineBytes, 'a');
  IgnoreRules rules = MustParse(StrCat("x\n", line, "\r\n"));
  EXPECT_TRUE(rules.Matches(line, kFile));
}

TEST(IgnoreLimitsTest, LongLineIsRejectedWithLineNumber) {
  std::string line(IgnoreRules::kMaxLineBytes + 1, 'a');
  absl::StatusOr<IgnoreRules> rules =
      IgnoreRules::Parse(StrCat("x\n# c\n", line, "\ny\n"));
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(rules.status()).find("line 3"), std::string::npos) << rules.status();
}

TEST(IgnoreLimitsTest, LongCommentLineIsRejectedToo) {
  std::string line = StrCat("#", std::string(IgnoreRules::kMaxLineBytes, ' '));
  absl::StatusOr<IgnoreRules> rules = IgnoreRules::Parse(line);
  ASSERT_FALSE(rules.ok());
  EXPECT_NE(Message(rules.status()).find("line 1"), std::string::npos);
}

TEST(IgnoreLimitsTest, MaxRulesAreAccepted) {
  std::string text;
  for (size_t i = 0; i < IgnoreRules::kMaxRules; ++i) text += StrCat("f", i, "\n");
  IgnoreRules rules = MustParse(text);
  EXPECT_EQ(rules.size(), IgnoreRules::kMaxRules);
  EXPECT_TRUE(rules.Matches("a/f9999", kFile));
  EXPECT_FALSE(rules.Matches("a/f10000", kFile));
}

TEST(IgnoreLimitsTest, TooManyRulesIsRejectedWithLineNumber) {
  std::string text = "# header\n\n";
  for (size_t i = 0; i <= IgnoreRules::kMaxRules; ++i) text += "f\n";
  absl::StatusOr<IgnoreRules> rules = IgnoreRules::Parse(text);
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(rules.status()).find("line 10003"), std::string::npos)
      << rules.status();
}

TEST(IgnoreLimitsTest, CommentsAndBlankLinesDoNotCountAsRules) {
  std::string text;
  for (size_t i = 0; i < IgnoreRules::kMaxRules; ++i) text += "# c\n\n   \nf\n";
  EXPECT_EQ(MustParse(text).size(), IgnoreRules::kMaxRules);
}

TEST(IgnoreLimitsTest, ManyRulesOnDeepPathStayFast) {
  std::string text;
  for (size_t i = 0; i < 2000; ++i) text += StrCat("**/d", i, "/*.[ch]\n");
  IgnoreRules rules = MustParse(text);
  std::string path;
  for (int i = 0; i < 40; ++i) path += StrCat("dir", i, "/");
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(rules.Matches(path + "x.c", kFile));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// ---- Cases cross-checked against `git check-ignore --no-index` --------------------

struct GitCase {
  std::string_view rules;
  std::string_view path;
  bool is_dir;
  bool ignored;
};

void PrintTo(const GitCase& c, std::ostream* os) {
  *os << "{rules \"" << c.rules << "\", path \"" << c.path << (c.is_dir ? "/" : "")
      << "\"}";
}

class IgnoreGitParityTest : public ::testing::TestWithParam<GitCase> {};

TEST_P(IgnoreGitParityTest, AgreesWithGit) {
  const GitCase& c = GetParam();
  EXPECT_EQ(MustParse(c.rules).Matches(c.path, c.is_dir), c.ignored)
      << "rules:\n"
      << c.rules << "\npath: " << c.path << (c.is_dir ? " (dir)" : " (file)");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IgnoreGitParityTest,
    ::testing::Values(GitCase{"*.c\n!a/*.c\n", "a/x.c", kFile, false},
                      GitCase{"*.c\n!a/*.c\n", "a/b/x.c", kFile, true},
                      GitCase{"a/\n!a/b\n", "a/b", kFile, true},
                      GitCase{"a/*\n!a/b/\n", "a/b/c", kFile, false},
                      GitCase{"a/**\n!a/b\n", "a/b/c", kFile, true},
                      GitCase{"a/**\n!a/b/c\n", "a/b/c", kFile, true},
                      GitCase{"**/b\n", "a/b/c", kFile, true},
                      GitCase{"a/**/\n", "a", kDir, false},
                      GitCase{"[!a]/x\n", "b/x", kFile, true},
                      GitCase{"*/\n", "f", kFile, false},
                      GitCase{"*/\n", "d/f", kFile, true}));

// The split a walk relies on, checked on random rules and paths against Matches().
TEST(IgnoreMatchTest, OwnLevelAndParentGiveMatches) {
  static const char* kPatterns[] = {"*.c",  "!a/*.c", "a/",     "!a/b",   "a/*",  "!a/b/",
                                    "a/**", "**/b",   "b",      "[!a]/x", "*/",   "x?",
                                    "/b",   "!x",     "a/**/c", "*~",     "!*.c", "d/"};
  static const char* kParts[] = {"a", "b",   "c",      "x",     "x.c",
                                 "d", "ab~", ".ferry", ".a.swp"};
  std::mt19937_64 random(5);
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    for (int r = 0, n = 1 + static_cast<int>(random() % 4); r < n; ++r) {
      text += StrCat(kPatterns[random() % std::size(kPatterns)], "\n");
    }
    IgnoreRules rules = MustParse(text);
    if (random() % 3 == 0) rules = IgnoreRules::Combine(IgnoreRules::BuiltIn(), rules);
    std::string path = kParts[random() % std::size(kParts)];
    for (int depth = static_cast<int>(random() % 4); depth > 0; --depth) {
      path += StrCat("/", kParts[random() % std::size(kParts)]);
    }
    const bool is_dir = random() % 2 == 0;
    const size_t slash = path.rfind('/');
    const bool parent =
        slash != std::string::npos && rules.Matches(path.substr(0, slash), true);
    EXPECT_EQ(rules.Matches(path, is_dir), parent || rules.MatchesOwnLevel(path, is_dir))
        << "rules:\n"
        << text << "path: " << path << (is_dir ? "/" : "");
  }
}

}  // namespace
}  // namespace ferry::files
